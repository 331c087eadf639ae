"""Every config key, drawn: valid values, boundaries, wrong types, out-of-range numbers,
unknown strings, empty tuples. A draw either validates or raises one ValueError whose
single line names a mutated key; never any other exception."""

from __future__ import annotations

import contextlib
import copy
import math

import ml_collections
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configs import custom_space, default, demo, study
from helpers.configs import tiny_config
from tofa_jax.config import schema, validate
from tofa_jax.cost.cost_model import METRICS
from tofa_jax.data.datasets import BUNDLED, TFDS_NAMES
from tofa_jax.deploy.runtimes import RUNTIMES
from tofa_jax.model.supernet import DTYPES, REMAT
from tofa_jax.search.palette import METHODS
from tofa_jax.space.search_space import ACTIVATIONS, HEADS, SPACE_NAMES
from tofa_jax.train.losses import VARIANTS
from tofa_jax.train.optim import SCHEDULES
from tofa_jax.train.schemes import MODES, SCHEMES
from tofa_jax.weights.torch_formats import FORMATS

CUSTOM = "model.custom_space"
# Keys that other work adds to configs/default.py; the table knows them already.
PENDING: set[str] = set()


def _custom_base() -> dict:
  c = tiny_config().to_dict()
  c["model"]["space"] = "custom"
  c["model"]["custom_space"] = custom_space.get_config().model.custom_space.to_dict()
  return c


BASES = {"tiny": tiny_config().to_dict(), "demo": demo.get_config().to_dict(),
         "custom": _custom_base()}
STRINGS = sorted({*METHODS, *METRICS, *RUNTIMES, *VARIANTS, *SCHEMES, *MODES, *SCHEDULES,
                  *REMAT, *DTYPES, *FORMATS,
                  *SPACE_NAMES, *TFDS_NAMES, *BUNDLED, *ACTIVATIONS, *HEADS, "auto", "custom",
                  "folder", "last", "score", "R0", "R2", "max", "min", "random:3", "stop", "skip",
                  "lite0-wheel", "shift", "lax", "", "zz", "random:x", "a\nb", "x" * 200})
ODD = [None, True, False, 0, -1, 1, 0.5, -0.5, 1.5, float("nan"), float("inf"), "", "zz", (),
       ("zz",), (2.0, 1.0), (0, 1), {}, {"a": 1}, 10**30, [1, 2]]


def _paths(node, prefix=()):
  """Every leaf path of a config dict; sections too; model.custom_space's fields and
  its stages' fields as their own paths."""
  for k, v in node.items():
    path = (*prefix, k)
    yield path
    if isinstance(v, dict):
      yield from _paths(v, path)
    elif path[-1] == "stages" and isinstance(v, list):
      for i, stage in enumerate(v):
        yield from _paths(stage, (*path, i))


def _name(path) -> str:
  """The name a message must contain: the dotted key; model.custom_space for its fields."""
  dotted = ".".join(str(p) for p in path)
  return CUSTOM if dotted.startswith(CUSTOM + ".") else dotted


def _like(default):
  """Values for a key whose valid default is `default`."""
  odd = st.sampled_from(ODD)
  if isinstance(default, bool):
    return st.booleans() | odd
  if isinstance(default, int):
    edges = st.sampled_from([0, 1, -1, 2, 7, 8, 15, 16, 17, 4096, 4097, 2**32 - 1, 2**32])
    return st.integers(-3, 300) | edges | odd
  if isinstance(default, float):
    edges = st.sampled_from([0.0, 1.0, 0.999999, 1e-12, -1e-12, 0.3, 200.0, -math.inf])
    return st.floats(-1.5, 2.5) | edges | st.integers(-1, 3) | odd
  if isinstance(default, str):
    return st.sampled_from(STRINGS) | st.text(max_size=6) | odd
  if isinstance(default, (tuple, list)):
    items = [x for x in default if not isinstance(x, dict)]
    item = _like(items[0]) if items else (st.sampled_from(STRINGS) | st.floats(-1, 400) |
                                          st.integers(0, 400))
    return st.lists(item, max_size=4).map(tuple) | odd
  if isinstance(default, dict):
    return st.sampled_from([{}, {"a": 1}, BASES["custom"]["model"]["custom_space"]]) | odd
  return st.integers(0, 300) | odd  # None: data.image_size


def _set(config: dict, path, value) -> None:
  node = config
  for p in path[:-1]:
    node = node[p]
  node[path[-1]] = value


def _get(config: dict, path):
  node = config
  for p in path:
    node = node[p]
  return node


@st.composite
def mutations(draw, n_keys):
  base_name = draw(st.sampled_from(sorted(BASES)))
  config = copy.deepcopy(BASES[base_name])
  paths = list(_paths(config))
  chosen = draw(st.lists(st.sampled_from(paths), min_size=n_keys[0], max_size=n_keys[1],
                         unique=True))
  names = []
  for path in chosen:
    try:
      old = _get(config, path)
    except (KeyError, IndexError, TypeError):  # an earlier mutation replaced its parent
      continue
    # A copy: a drawn dict or list (BASES' own custom space, ODD's) must never be
    # mutated in place by a later path of this draw, or later draws see it.
    _set(config, path, copy.deepcopy(draw(_like(old))))
    names.append(_name(path))
  return base_name, config, names


def _check(config: dict, names: list[str]) -> None:
  for entry in (validate.training, validate.palette):
    try:
      entry(ml_collections.ConfigDict(config))
    except ValueError as e:
      message = str(e)
      assert "\n" not in message, message
      assert any(n in message for n in names), (names, message)


FAST = settings(deadline=None, max_examples=500,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FAST
@given(mutations((1, 1)))
def test_one_key_validates_or_names_itself(draw):
  _, config, names = draw
  _check(config, names)


@FAST
@given(mutations((2, 5)))
def test_several_keys_validate_or_name_one(draw):
  _, config, names = draw
  _check(config, names)


@settings(deadline=None, max_examples=200)
@given(base=st.sampled_from(sorted(BASES)), data=st.data())
def test_missing_keys_are_skipped_or_named(base, data):
  """Saved configs of older runs lack keys: never a KeyError or AttributeError."""
  config = copy.deepcopy(BASES[base])
  paths = [p for p in _paths(config) if not _name(p).startswith(CUSTOM)]
  for path in data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=6, unique=True)):
    with contextlib.suppress(KeyError, TypeError):  # already gone with its section
      del _get(config, path[:-1])[path[-1]]
  for entry in (validate.training, validate.palette):
    try:
      entry(ml_collections.ConfigDict(config))
    except ValueError as e:
      assert "\n" not in str(e) and "." in str(e), str(e)


def _default_keys() -> set[str]:
  """Every key of configs/default.py, and the study section of configs/study.py."""
  keys = set()
  for config, prefix in ((default.get_config().to_dict(), ""),
                         (study.get_config().to_dict(), "study.")):
    keys |= {".".join(p) for p in _paths(config) if ".".join(p).startswith(prefix)
             and (not isinstance(_get(config, p), dict) or ".".join(p) == CUSTOM)}
  return keys


def test_the_table_holds_every_key_of_the_defaults():
  keys = _default_keys()
  assert keys - set(schema.KEYS) == set()
  assert set(schema.KEYS) - keys <= PENDING


@pytest.mark.parametrize("key", sorted(_default_keys()))
def test_every_key_is_checked(key):
  """A value no key allows is refused, naming the key (not as an unknown key)."""
  config = (study.get_config() if key.startswith("study.") else tiny_config()).to_dict()
  _set(config, key.split("."), 5 if key == CUSTOM else {"bad": 1})
  with pytest.raises(ValueError) as e:
    validate.training(ml_collections.ConfigDict(config))
  assert str(e.value).startswith(f"{key}=") and "not a config key" not in str(e.value)

"""Shared fixtures: realistic (non-default) supernet variables, compile counting."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile

import jax
import jax.numpy as jnp
import pytest

from tofa_jax import supernet
from tofa_jax.search_space import get_space

# Emitted once per program that jit lowers and hands to the backend, whether XLA
# compiles it or loads it from the persistent cache (the event times both).
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"

# Identical programs (the same train step in several runs of one test, or in the
# xdist workers) compile once: XLA's persistent cache, keyed by the program.
jax.config.update("jax_compilation_cache_dir",
                  os.path.join(tempfile.gettempdir(), "tofa_jax_test_xla_cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.0)


def randomized_variables(model: supernet.Supernet, seed: int = 0,
                         resolution: int | None = None) -> dict:
  """Init variables with BN params/stats moved off their defaults.

  Default BN (scale 1, bias 0, mean 0, var 1) would hide slicing mistakes in
  BN parameters, and identity kernel transforms would hide a missing
  transform; these values keep activations O(1).
  """
  variables = supernet.init_variables(model, seed, resolution)
  flat, treedef = jax.tree_util.tree_flatten_with_path(variables)
  keys = jax.random.split(jax.random.key(seed + 1), len(flat))
  out = []
  for (path, x), key in zip(flat, keys, strict=True):
    name = jax.tree_util.keystr(path[-1:])
    u = jax.random.uniform(key, x.shape)
    if "transform_" in name:
      x = x + 0.1 * jax.random.normal(key, x.shape)
    elif "var" in name or "scale" in name:
      x = 0.5 + u
    elif "mean" in name or "bias" in name:
      x = 0.2 * (u - 0.5)
    out.append(x)
  return jax.tree.unflatten(treedef, out)


@contextlib.contextmanager
def count_compiles():
  """Counts programs compiled (or read from the persistent cache) inside the block:
  `with count_compiles() as n`."""
  counter = [0]

  def listener(event: str, *_args, **_kwargs) -> None:
    if event == _COMPILE_EVENT:
      counter[0] += 1

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield counter
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture(scope="session")
def tiny_model() -> tuple:
  space = get_space("tiny")
  model = supernet.build(space, num_classes=7)
  return space, model, randomized_variables(model)


@functools.cache
def jit_apply(model):
  """`model.apply` jitted with the Python-valued arguments static.

  Eager (un-jitted) applies would compile every lax.cond/switch anew per call.
  """
  return jax.jit(model.apply, static_argnames=("train", "resolution", "mutable",
                                                "capture_intermediates"))


def images(n: int, size: int, seed: int = 0) -> jax.Array:
  return jax.random.normal(jax.random.key(seed), (n, size, size, 3), jnp.float32)

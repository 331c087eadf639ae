"""Every config key and the rule its value must follow, and the walk that checks them.

`KEYS` maps each dotted key of configs/default.py to a rule (`rules.py`): type,
range, or the allowed values, which are imported from the layer that uses the key.
Bounds follow how the code uses each key (the comment says why where it is not
obvious). `SPACE_FIELDS` and `STAGE_FIELDS` do the same for `model.custom_space`.

`check_keys` walks a config and applies the table to the keys present. Keys that
depend on each other (labelled count and classes, budgets and the space, ...) are
checked in `consistency.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tofa_jax.config.rules import (
  Bool,
  Choice,
  Int,
  Interval,
  Nullable,
  Number,
  Pattern,
  Section,
  Seq,
  Str,
  is_section,
  show,
)
from tofa_jax.cost.cost_model import METRICS
from tofa_jax.data.augment import STRONG_POLICIES
from tofa_jax.data.datasets import BUNDLED, TFDS_NAMES
from tofa_jax.data.image_files import BAD_IMAGE_POLICIES
from tofa_jax.data.input_pipeline import CACHE_MODES
from tofa_jax.deploy.runtimes import RUNTIMES
from tofa_jax.model.elastic_ops import BN_SYNC, DEPTHWISE_IMPLS
from tofa_jax.model.supernet import CONDITIONAL, DTYPES, REMAT_SETTINGS
from tofa_jax.search.palette import METHODS
from tofa_jax.search.palette_store import NAME_PATTERN, NAME_RULE
from tofa_jax.search.regression import PRESETS
from tofa_jax.search.selection import INDICES, RULES
from tofa_jax.space.search_space import ACTIVATIONS, HEADS, PADDINGS, SHORTCUTS, SPACE_NAMES
from tofa_jax.train.losses import VARIANTS
from tofa_jax.train.optim import SCHEDULES
from tofa_jax.train.schemes import MODES, SCHEMES
from tofa_jax.weights.torch_formats import FORMATS

DATA_NAMES = (*TFDS_NAMES, *BUNDLED, "folder")  # as datasets.load dispatches them
SEED = Int(0, 2**32 - 1)  # NumPy's default_rng takes no negative seed; rng_for keeps 32 bits
FRACTION = Number(0, 1, hi_open=True)  # a share held out: some data must stay
PROBABILITY = Number(0, 1)
RATE = Number(0, 1, hi_open=True)  # dropout-like: 1 would drop everything
RESOLUTION = Int(8, 4096)  # pixels: the networks downsample 32x; no space is meant for less
COUNT = Int(1)
EVERY = Int(0)  # 0: only at the end
POSITIVE = Number(0, lo_open=True)
NONNEGATIVE = Number(0)

KEYS: dict[str, Any] = {
    "seed": SEED,
    "jax_cache_dir": Str(),

    "model.space": Choice((*SPACE_NAMES, "custom")),
    "model.custom_space": Section(),  # checked field by field when model.space == 'custom'
    "model.mflops_window": Interval(0, empty_ok=True),
    "model.resolutions": Seq(RESOLUTION, distinct=True, what="() or a tuple of pixel sizes"),
    "model.dropout_rate": RATE,
    "model.drop_connect_rate": RATE,
    "model.depthwise_impl": Choice(DEPTHWISE_IMPLS),
    "model.dtype": Choice((*DTYPES, "auto")),
    "model.conditional": Choice(CONDITIONAL),
    "model.bn_sync": Choice(BN_SYNC),

    "init.checkpoint": Str(),  # 'random', a named start, a directory or a file: consistency
    "init.download": Bool(),
    "init.format": Choice(("", *FORMATS)),
    "init.keep_head": Bool(),

    "data.name": Choice(DATA_NAMES),
    "data.data_dir": Str(),
    "data.folder": Str(),
    "data.test_folder": Str(),
    "data.unlabelled_folder": Str(),
    "data.num_labelled": Int(0),  # 0: every training example labelled
    "data.fully_labelled": Bool(),
    "data.val_fraction": FRACTION,
    "data.image_size": Nullable(RESOLUTION),
    "data.train_split": Str(),
    "data.test_split": Str(),
    "data.mean": Seq(Number(0, 1), sizes=(0, 3), what="() or 3 numbers (R, G, B)"),
    "data.std": Seq(Number(0, lo_open=True), sizes=(0, 3), what="() or 3 numbers (R, G, B)"),
    "data.threads": COUNT,  # grain reader threads
    "data.bad_images": Choice(BAD_IMAGE_POLICIES),
    "data.cache": Choice(CACHE_MODES),
    "data.cache_dir": Str(),
    "data.workers": Int(0, 64),  # grain worker processes; 0 reads with threads alone

    "loss.variant": Choice(VARIANTS),
    "loss.threshold": PROBABILITY,
    "loss.label_smoothing": Number(0, 1, hi_open=True),
    "loss.beta": PROBABILITY,  # AlphaNet eq. 8: (1 - beta) CE + beta KD
    "loss.temperature": POSITIVE,

    "train.steps": COUNT,
    "train.batch_size": COUNT,
    "train.unlabelled_batch_size": Int(0),  # >= 1 and divisible when the loss uses it
    "train.mode": Choice(MODES),
    "train.arch": Str(nonempty=True),  # 'max', 'min', 'random:SEED' or a file: consistency
    "train.sampling": Choice(SCHEMES),
    "train.num_random": Int(0),
    "train.ps_phases": Seq(Number(0, 1), sizes=(4,), what="4 fractions of train.steps "
                           "(full, kernel, depth, width) summing to 1"),
    "train.ps_subnets": Seq(Int(1, 64), sizes=(4,), what="4 subnet counts per step (full, "
                            "kernel, depth, width), the full phase's 1"),
    "train.remat": Choice(REMAT_SETTINGS),
    "train.log_every": COUNT,
    "train.checkpoint_every": EVERY,
    "train.eval_every": EVERY,
    "train.stop_after_steps": Int(1, also=(-1,)),

    "optim.lr": POSITIVE,
    "optim.momentum": Number(0, 1, hi_open=True),
    "optim.weight_decay": NONNEGATIVE,
    # -1: the warm-up is in the other key; both set or neither: consistency.warmup
    "optim.warmup_epochs": Number(0, also=(-1,)),  # fitted to half of train.steps: epochs.py
    "optim.warmup_steps": Int(0, also=(-1,)),
    "optim.schedule": Choice(SCHEDULES),

    "augment.crop_scale": Interval(0, 1, lo_open=True),
    "augment.crop_ratio": Interval(0, lo_open=True),
    "augment.flip": Bool(),
    "augment.jitter": PROBABILITY,  # factors 1 +- jitter; above 1 they turn negative
    "augment.num_ops": Int(0, 16),  # RandAugment ops per image (FixMatch: 2); each unrolled
    "augment.cutout": PROBABILITY,  # square side, a fraction of the image side
    "augment.strong": Choice(STRONG_POLICIES),

    "evals.batch_size": COUNT,
    "evals.bn_images": COUNT,  # rounded up to whole evals.batch_size batches: calibration.py
    "evals.subnets": Seq(Str(nonempty=True),
                         what="a tuple of 'max', 'min', 'random:SEED' or arch JSON files"),

    "palette.method": Choice(METHODS),
    "palette.compare": Seq(Choice(METHODS), what=f"a tuple of methods from {list(METHODS)}"),
    "palette.metric": Choice(METRICS),
    "palette.index": Choice(INDICES),
    "palette.rule": Choice(RULES),
    "palette.budgets": Seq(POSITIVE, what="() or a tuple of budgets in the metric's unit"),
    "palette.num_budgets": COUNT,
    "palette.resolutions": Seq(RESOLUTION, distinct=True,
                               what="() or a tuple of the run's resolutions"),
    "palette.val_fraction": FRACTION,
    "palette.seed": SEED,
    "palette.random_samples": COUNT,
    "palette.search_floor": FRACTION,  # share of the budget: 1 would leave p(a) = t only
    "palette.evolution.population": COUNT,
    "palette.evolution.generations": COUNT,
    "palette.evolution.parents": COUNT,
    "palette.evolution.num_mutations": Int(0),
    "palette.evolution.num_crossovers": Int(0),
    "palette.evolution.mutate_prob": PROBABILITY,
    "palette.predictor.samples": COUNT,
    "palette.predictor.hidden": Seq(COUNT, what="a tuple of hidden widths (() = linear)"),
    "palette.predictor.epochs": COUNT,
    "palette.predictor.batch_size": COUNT,
    "palette.predictor.learning_rate": POSITIVE,
    "palette.predictor.holdout": FRACTION,
    "palette.reward": Choice(tuple(sorted(PRESETS))),
    "palette.lambdas": Seq(NONNEGATIVE, sizes=(0, 2), what="() or (lambda1, lambda2)"),
    "palette.cas": Bool(),
    "palette.latency_batch": COUNT,
    "palette.latency_repeats": COUNT,
    "palette.latency_warmup": COUNT,  # the first call compiles or allocates
    "palette.latency_runtime": Choice(RUNTIMES),
    "palette.latency_threads": COUNT,
    "palette.latency_table": Str(),
    "palette.export": Bool(),
    "palette.name": Pattern(NAME_PATTERN, NAME_RULE),  # a folder under WORKDIR/palettes/
    "palette.population_bins": Int(0),  # 0: off
    "palette.population_per_bin": COUNT,
    "palette.progress_every_s": NONNEGATIVE,

    # python -m tofa_jax.study (configs/study.py); training configs have no study section.
    "study.seeds": Seq(SEED, nonempty=True, distinct=True, what="a non-empty tuple of seeds"),
    "study.rss_labelled": COUNT,
    "study.population_bins": COUNT,
    "study.finetune_steps": COUNT,
    "study.rss_epochs": COUNT,
    "study.rss_lr": POSITIVE,
    "study.rss_resolutions": Seq(RESOLUTION, nonempty=True, distinct=True,
                                 what="a non-empty tuple of the space's resolutions"),
    "study.selection_budgets": COUNT,
    "study.regnas_floor": FRACTION,
    "study.regnas_evolution.population": COUNT,
    "study.regnas_evolution.generations": COUNT,
    "study.regnas_evolution.parents": COUNT,
    "study.regnas_evolution.num_mutations": Int(0),
    "study.regnas_evolution.num_crossovers": Int(0),
    "study.regnas_evolution.mutate_prob": PROBABILITY,
    "study.quick_steps": COUNT,
}
SECTIONS = tuple(dict.fromkeys(k.split(".")[0] for k in KEYS if "." in k))

# model.custom_space: the fields of space.search_space.SearchSpace and StageSpec.
WIDTHS = Seq(Int(1), nonempty=True, what="a non-empty tuple of channel counts")
SPACE_FIELDS: dict[str, Any] = {
    "name": Str(nonempty=True),
    "stem_widths": WIDTHS,
    "stem_act": Choice(ACTIVATIONS),
    "stages": Seq(Section(), nonempty=True, what="a non-empty list of stage dicts"),
    "head_widths": WIDTHS,
    "head_act": Choice(ACTIVATIONS),
    "head_expand": POSITIVE,
    "head": Choice(HEADS),
    "resolutions": Seq(RESOLUTION, nonempty=True, distinct=True,
                       what="a non-empty tuple of pixel sizes"),
    "per_layer": Bool(),
    "shortcut": Choice(SHORTCUTS),
    "padding": Choice(PADDINGS),
    "mflops_window": Nullable(Interval(0)),
    "bn_eps": POSITIVE,
    "kernel_transform": Bool(),
    "head_bias": Bool(),
}
SPACE_REQUIRED = ("name", "stem_widths", "stem_act", "stages", "head_widths", "head_act")
STAGE_FIELDS: dict[str, Any] = {
    "widths": WIDTHS,
    "depths": Seq(Int(1), nonempty=True, what="a non-empty tuple of layer counts"),
    "kernels": Seq(Int(1, 15), nonempty=True, what="a non-empty tuple of odd kernel sizes"),
    "expansions": Seq(POSITIVE, nonempty=True, what="a non-empty tuple of expansion ratios"),
    "stride": Int(1, 4),
    "se": Bool(),
    "act": Choice(ACTIVATIONS),
}


def get(config: Any, key: str, default: Any = None) -> Any:
  """The value at dotted `key`, or `default` where a part is missing."""
  node = config
  for part in key.split("."):
    if not is_section(node) or part not in node:
      return default
    node = node[part]
  return node


def has(config: Any, key: str) -> bool:
  missing = object()
  return get(config, key, missing) is not missing


def check_keys(config: Any, sections: Iterable[str] | None = None, strict: bool = True) -> None:
  """Applies `KEYS` to every key of `config` present in `sections` (None: all).

  strict: a key that is not in the table is an error (a misspelt key in a config
  file would be ignored otherwise); without it such keys are skipped, for saved
  configs of runs from other versions. Missing keys are never errors here: the
  code falls back to its defaults for the optional ones.
  """
  if not is_section(config):
    raise ValueError(f"the config is {show(config)}, not a ConfigDict; a config file's "
                     "get_config() returns one")
  wanted = None if sections is None else set(sections)
  for name, value in config.items():
    if wanted is not None and name not in wanted:
      continue
    _walk(str(name), value, strict)


def _walk(key: str, value: Any, strict: bool) -> None:
  if key in KEYS:
    KEYS[key].check(key, value)
    return
  children = sorted({k[len(key) + 1:].split(".")[0] for k in KEYS if k.startswith(key + ".")})
  if not children:
    if strict:
      parent, _, leaf = key.rpartition(".")
      known = sorted({k[len(parent) + 1:].split(".")[0] for k in KEYS
                      if k.startswith(parent + ".")}) if parent else sorted(
                          {k.split(".")[0] for k in KEYS})
      raise ValueError(f"{key} is not a config key; the keys{f' of {parent}' if parent else ''}"
                       f" are {known} (configs/default.py)")
    return
  if not is_section(value):
    raise ValueError(f"{key}={show(value)} is not a section; {key} holds the keys {children}")
  for name, child in value.items():
    _walk(f"{key}.{name}", child, strict)

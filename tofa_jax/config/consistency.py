"""Checks between config keys: the space, the data, batches, the pretrained start and
the palette must fit together. Each check raises one one-line ValueError naming
every key involved; each runs only when its keys are present (`schema.get`).

They run after `schema.check_keys`, so every value already has its type and range.
Where a lower layer already checks a combination (the step config, the palette's
evolution settings), it is called rather than written again.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from tofa_jax.config import facts
from tofa_jax.config.rules import check_fields, num, show
from tofa_jax.config.schema import SPACE_FIELDS, SPACE_REQUIRED, STAGE_FIELDS, get, has
from tofa_jax.data import image_files
from tofa_jax.deploy import latency_table
from tofa_jax.runtime import mesh
from tofa_jax.search.evolution import EvolutionConfig
from tofa_jax.search.predictor import PredictorConfig
from tofa_jax.space import genome, sampling, search_space
from tofa_jax.space.search_space import SearchSpace
from tofa_jax.train import epochs, evaluator, losses, schemes
from tofa_jax.train import step as train_step
from tofa_jax.weights import named_starts
from tofa_jax.weights.params_dir import META_FILE
from tofa_jax.weights.torch_formats import FORMATS

SEARCHES = ("evolution", "random", "regnas", "predictor")  # need validation data
CUSTOM = "model.custom_space"


def space(config: Any) -> SearchSpace:
  """The run's space (`model.space`, `model.custom_space`, `model.resolutions`,
  `model.mflops_window`); custom spaces are checked field by field first."""
  model = get(config, "model")
  if model is None or "space" not in model:
    raise ValueError("model.space is missing; choose one of "
                     f"{[*search_space.SPACE_NAMES, 'custom']}")
  if model["space"] == "custom":
    custom = model.get("custom_space")
    if not custom:
      raise ValueError(f"model.space='custom' needs {CUSTOM} (see configs/custom_space.py)")
    check_fields(CUSTOM, custom, SPACE_FIELDS, SPACE_REQUIRED)
    for i, stage in enumerate(custom["stages"]):
      key = f"{CUSTOM}.stages[{i}]"
      check_fields(key, stage, STAGE_FIELDS, tuple(STAGE_FIELDS))
      if any(k % 2 == 0 for k in stage["kernels"]):
        raise ValueError(f"{key}.kernels={show(stage['kernels'])} has an even size; allowed: "
                         "odd kernel sizes (centred crops of the largest)")
  try:
    return search_space.resolve(model)
  except ValueError as e:  # the space's own checks name space.* fields
    raise ValueError(str(e) if "model." in str(e) else f"{CUSTOM}: {e}") from None


def window(config: Any, sp: SearchSpace) -> None:
  """Random subnets are drawn inside the MFLOPs window by rejection: the window must
  admit subnets at every resolution the sandwich draws them at (any one for RSS)."""
  if sp.mflops_window is None:
    return
  scheme = get(config, "train.sampling", "sandwich")
  if get(config, "train.mode", "supernet") == "single" or scheme not in schemes.WINDOWED:
    return  # no subnet is drawn inside the window
  if scheme == "sandwich" and get(config, "train.num_random", 2) == 0:
    return  # no random subnets: the max and min are never drawn
  lo, hi = sp.mflops_window
  ranges = {r: facts.mflops_range(sp, r) for r in sp.resolutions}
  empty = [r for r, (a, b) in ranges.items() if b < lo or a > hi]
  if not empty or (scheme != "sandwich" and len(empty) < len(ranges)):
    return
  r = empty[0]
  own = get(config, "model.mflops_window") or None
  what = (f"model.mflops_window={show(own)}" if own else
          f"the MFLOPs window {show(sp.mflops_window)} of model.space={sp.name!r}")
  resolutions = get(config, "model.resolutions") or None
  where = (f"model.resolutions={show(resolutions)}" if resolutions else
           f"the space's resolutions {show(sp.resolutions)}")
  raise ValueError(f"{what} admits no subnet at {r} px ({where}): its subnets span "
                   f"{ranges[r][0]:.4g}-{ranges[r][1]:.4g} MFLOPs there; set "
                   "model.mflops_window=(lo, hi) to cover them")


def data(config: Any, classes: int | None) -> None:
  """The data source's own keys: folders that must exist, mean with std."""
  d = get(config, "data") or {}
  name = d.get("name")
  if name == "folder":
    root = d.get("folder", "")
    if not os.path.isdir(root):
      raise ValueError(f"data.folder={show(root)} is not a directory; data.name='folder' needs "
                       "data.folder=root with root/<class>/<image>")
    if not image_files.class_folders(root):
      raise ValueError(f"data.folder={show(root)} has no class sub-folders; allowed: "
                       "root/<class>/<image>")
    test = d.get("test_folder", "")
    if not os.path.isdir(test):
      raise ValueError(f"data.test_folder={show(test)} is not a directory; data.name='folder' "
                       "needs it, with the class sub-folders of data.folder")
    extra = sorted(set(image_files.class_folders(test)) - set(image_files.class_folders(root)))
    if extra:
      raise ValueError(f"data.test_folder={show(test)}: class folder {extra[0]!r} is not one of "
                       "data.folder's classes; allowed: the class sub-folders of data.folder")
  unlabelled = d.get("unlabelled_folder", "")
  if unlabelled and not os.path.isdir(unlabelled):
    raise ValueError(f"data.unlabelled_folder={show(unlabelled)} is not a directory; allowed: "
                     "'' or a directory of images")
  mean, std = d.get("mean", ()), d.get("std", ())
  if bool(mean) != bool(std):
    raise ValueError(f"data.mean={show(mean)} and data.std={show(std)}: set both or neither; "
                     "allowed: both () (the checkpoint's) or both 3 numbers")


def labelled(config: Any, classes: int | None, uses_unlabelled: bool) -> None:
  """A class-balanced labelled draw needs one image per class at least; the loss
  variants with unlabelled terms need some unlabelled data."""
  d = get(config, "data") or {}
  n, fully = d.get("num_labelled", 0), d.get("fully_labelled", False)
  if classes is not None and 0 < n < classes and not fully:
    raise ValueError(f"data.num_labelled={n} is below the {classes} classes of data.name="
                     f"{d.get('name')!r}; allowed: 0 (all labelled) or data.num_labelled >= "
                     f"{classes}")
  if uses_unlabelled and not d.get("unlabelled_folder") and (fully or n == 0):
    why = "data.fully_labelled=True" if fully else "data.num_labelled=0"
    raise ValueError(f"loss.variant={get(config, 'loss.variant')!r} needs unlabelled data, but "
                     f"{why} labels every training example; use loss.variant='lab', or set "
                     "data.num_labelled or data.unlabelled_folder")


def step(config: Any, sp: SearchSpace) -> train_step.StepConfig | None:
  """The train step's own checks (variant, sampling, data.image_size), reused."""
  keys = ("loss.variant", "loss.threshold", "loss.label_smoothing", "loss.beta",
          "loss.temperature", "train.sampling", "train.num_random", "data")
  if not all(has(config, k) for k in keys):
    return None
  return train_step.step_config(config, sp)


def schedule(config: Any, sp: SearchSpace) -> None:
  """What the run trains: `train.ps_*` for progressive shrinking; with
  `train.mode='single'`, `train.arch` (an arch of the space) and `evals.subnets`, which
  must leave the evaluation to that arch. The checks that need the data's sizes (the
  warm-up, two-subnet schemes' epochs) run when training starts (`train/loop.py`)."""
  if not all(has(config, k) for k in ("train.sampling", "train.num_random", "train.steps")):
    return
  schemes.from_config(config, sp)
  if get(config, "train.mode", "supernet") != "single":
    return
  arch = get(config, "train.arch", "max")
  names = tuple(get(config, "evals.subnets", ()))
  if names not in ((), evaluator.DEFAULT_SUBNETS, (arch,)):
    raise ValueError(f"evals.subnets={show(names)} conflicts with train.mode='single', which "
                     f"evaluates train.arch={arch!r} alone; allowed: () (no evaluation), "
                     f"{show(evaluator.DEFAULT_SUBNETS)} (the default) or ({arch!r},)")


def warmup(config: Any) -> None:
  """The warm-up is stated once: `optim.warmup_epochs` or `optim.warmup_steps`, the
  other -1 (`train/epochs.warmup_form`). Its length against the run's is fitted when
  training starts, which knows the epoch."""
  optim = get(config, "optim")
  if optim is not None:
    epochs.warmup_form(optim)


def batches(config: Any, uses_unlabelled: bool, devices: int) -> None:
  """Global batches are sharded over every device."""
  for key in ("train.batch_size", "evals.batch_size"):
    if has(config, key):
      mesh.check_batch_divides(key, get(config, key), devices)
  key = "train.unlabelled_batch_size"
  if uses_unlabelled and has(config, key):
    size = get(config, key)
    if size < 1:
      raise ValueError(f"{key}={size} is out of range; allowed: {key} >= 1 (loss.variant="
                       f"{get(config, 'loss.variant')!r} trains on unlabelled data)")
    mesh.check_batch_divides(key, size, devices)


def subnets(config: Any, sp: SearchSpace) -> None:
  """`evals.subnets`: max, min, random:SEED or an arch JSON file of the space."""
  for i, spec in enumerate(get(config, "evals.subnets", ())):
    key = f"evals.subnets[{i}]"
    allowed = "'max', 'min', 'random:SEED' or an arch JSON file"
    if spec in ("max", "min"):
      continue
    if spec.startswith("random:"):
      seed = spec.split(":", 1)[1]
      if not seed.isdigit():
        raise ValueError(f"{key}={spec!r} has no seed; allowed: {allowed}")
      continue
    if not os.path.isfile(spec):
      raise ValueError(f"{key}={spec!r} is neither a subnet name nor a file; allowed: {allowed}")
    try:
      sampling.sample_named(sp, spec)
    except (ValueError, KeyError, TypeError) as e:
      raise ValueError(f"{key}={spec!r}: not an arch of model.space={sp.name!r} ({e})") from None


def init(config: Any, sp: SearchSpace, classes: int | None) -> None:
  """The pretrained start exists (or is 'random'), fits the space, and a converted one
  holds this space (and classes, with init.keep_head)."""
  path, fmt = get(config, "init.checkpoint", ""), get(config, "init.format", "")
  allowed = (f"'{named_starts.RANDOM}', a named start {sorted(named_starts.NAMED)}, a directory "
             "from python -m tofa_jax.convert_torch or a PyTorch file with init.format")
  if path == named_starts.RANDOM:
    return
  if not path:
    raise ValueError(f"init.checkpoint='' names no start; allowed: {allowed}")
  if path in named_starts.NAMED:
    start = named_starts.NAMED[path]
    if sp.name not in start.spaces:
      raise ValueError(f"init.checkpoint={path!r} ({start.network}) initialises model.space "
                       f"{list(start.spaces)}, not {sp.name!r}")
    reason = named_starts.missing(path, bool(get(config, "init.download", False)))
    if reason:
      raise ValueError(reason)
    return
  if os.path.isfile(path):
    if not fmt:
      raise ValueError(f"init.format='' is unknown for init.checkpoint={path!r} (a file); "
                       f"choose one of {list(FORMATS)}")
    return
  if not os.path.isdir(path):
    raise ValueError(f"init.checkpoint={path!r} does not exist; allowed: {allowed}")
  meta_path = os.path.join(path, META_FILE)
  try:
    with open(meta_path) as f:
      meta = json.load(f)
    held = search_space.space_from_config(meta["space"])
    held_classes = int(meta["num_classes"])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"init.checkpoint={path!r}: no readable {META_FILE} ({type(e).__name__}); "
                     "expected a directory from python -m tofa_jax.convert_torch") from None
  same = dataclasses.replace(held, resolutions=sp.resolutions, mflops_window=sp.mflops_window)
  if same != sp:
    raise ValueError(f"init.checkpoint={path!r} holds space {held.name!r}, but model.space="
                     f"{sp.name!r}; convert it with --space={sp.name}")
  if get(config, "init.keep_head", False) and classes is not None and held_classes != classes:
    raise ValueError(f"init.keep_head=True needs {held_classes} classes (init.checkpoint's), "
                     f"but data.name={get(config, 'data.name')!r} has {classes}; set "
                     "init.keep_head=False")


def palette(config: Any, sp: SearchSpace, classes: int | None) -> None:
  """The palette's keys against each other and against the space."""
  pc = get(config, "palette")
  if pc is None:
    return
  evo = pc.get("evolution") or {}
  EvolutionConfig(**{f.name: evo[f.name] for f in dataclasses.fields(EvolutionConfig)
                     if f.name in evo}).check()
  pred = pc.get("predictor") or {}
  PredictorConfig(**{f.name: pred[f.name] for f in dataclasses.fields(PredictorConfig)
                     if f.name in pred}).check()
  lambdas = tuple(pc.get("lambdas", ()))
  if lambdas and not any(lambdas):
    raise ValueError(f"palette.lambdas={show(lambdas)} weighs neither top-1 nor NFR; allowed: "
                     "() (palette.reward's preset) or lambda1 + lambda2 > 0")
  resolutions = tuple(pc.get("resolutions", ())) or sp.resolutions
  genome.Genome(sp, resolutions)  # palette.resolutions must be the run's
  methods = {pc.get("method"), *pc.get("compare", ())}
  if (methods & set(SEARCHES) and get(config, "data.val_fraction", 0.0) == 0
      and pc.get("val_fraction") == 0):
    raise ValueError(f"palette.method={pc.get('method')!r} / palette.compare="
                     f"{show(tuple(pc.get('compare', ())))} search on validation data, but "
                     "data.val_fraction=0 and palette.val_fraction=0; set palette.val_fraction "
                     "> 0 (TOFA 4.6 uses 0.3)")
  _budgets(pc, sp, resolutions, classes)
  path = pc.get("latency_table", "")
  if path:
    try:
      latency_table.load(path, sp, classes)
    except (ValueError, KeyError, TypeError) as e:
      raise ValueError(f"palette.latency_table={path!r}: {e}") from None


def _budgets(pc: Any, sp: SearchSpace, resolutions: tuple, classes: int | None) -> None:
  budgets, metric = tuple(pc.get("budgets", ())), pc.get("metric", "mflops")
  span = facts.cost_range(sp, metric, resolutions, classes) if budgets else None
  if span is None:
    return
  lo, hi = span
  for b in budgets:
    if not lo * (1 - 1e-9) <= b <= hi * (1 + 1e-9):
      where = f"space {sp.name!r} at {show(list(resolutions))} px" + (
          f", {classes} classes" if metric in ("mflops", "params") else "")
      raise ValueError(f"palette.budgets={show(budgets)}: {num(b)} is outside the range of "
                       f"palette.metric={metric!r} ({where}); allowed: {lo:.4g} <= budget <= "
                       f"{hi:.4g}")


def uses_unlabelled(config: Any) -> bool:
  variant = get(config, "loss.variant")
  return variant in losses.VARIANTS and any(losses.terms(variant))

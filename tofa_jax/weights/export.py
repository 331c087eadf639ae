"""Standalone static models: one palette member with its recalibrated BN.

A directory holds `variables/` (orbax; the StaticNet's own, sliced from the
supernet) and `meta.json` (kind 'static', the space, the arch, classes and their
names, normalisation, the eval preprocessing and what the palette measured).
`load` rebuilds the StaticNet; `python -m tofa_jax.predict --params=DIR` and
`tofa_jax.load_member(DIR)` run it. `deploy_metadata` is what the exported files
(ONNX `metadata_props`, LiteRT's sidecar JSON) carry of it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from tofa_jax.model import static_net
from tofa_jax.space import arch as arch_lib
from tofa_jax.space.search_space import SearchSpace, space_from_config
from tofa_jax.weights import stored_dir
from tofa_jax.weights.stored_dir import META_FILE, VARIABLES_DIR

KIND = "static"


@dataclasses.dataclass
class StaticModel:
  model: static_net.StaticNet
  variables: dict
  space: SearchSpace
  arch: arch_lib.Arch
  num_classes: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  info: dict
  class_names: tuple[str, ...] | None = None  # by class index; None in older directories
  preprocess: dict | None = None  # PREPROCESS's keys; None: the palette's (older directories)


# How the palette's evaluator sizes images (data/input_pipeline.resize_square): the
# shorter side to the resolution, then a centre crop. A member's top-1 holds for this.
PALETTE_PREPROCESS = {"crop_fraction": 1.0, "resample": "bilinear"}

WRITTEN_BY = "python -m tofa_jax.palette (palette.export=True)"


def save(out_dir: str, space: SearchSpace, arch: arch_lib.Arch, supernet_variables: dict,
         num_classes: int, mean, std, info: dict[str, Any] | None = None,
         class_names=None) -> None:
  """Extracts `arch` from calibrated supernet variables and writes it to `out_dir`."""
  out_dir = os.path.abspath(out_dir)
  if os.path.exists(os.path.join(out_dir, VARIABLES_DIR)):
    raise ValueError(f"{out_dir}: {VARIABLES_DIR}/ exists already; choose a new directory")
  _, variables = static_net.extract(space, arch, supernet_variables, num_classes)
  stored_dir.write(out_dir, variables, {
      "kind": KIND, "space": dataclasses.asdict(space), "arch": arch.to_dict(per_layer=True),
      "num_classes": num_classes, "mean": list(mean), "std": list(std), "info": info or {},
      **meta_names(class_names, num_classes), "preprocess": dict(PALETTE_PREPROCESS)})


def meta_names(class_names, num_classes: int) -> dict[str, Any]:
  """{'class_names': [...]} for meta.json, checked against the class count; {} when None."""
  if class_names is None:
    return {}
  names = [str(n) for n in class_names]
  if len(names) != num_classes:
    raise ValueError(f"{len(names)} class names for {num_classes} classes; the data's label "
                     "names and its class count disagree")
  return {"class_names": names}


def deploy_metadata(static: StaticModel) -> dict[str, Any]:
  """What a deployed file needs besides its graph: input layout, size, normalisation,
  preprocessing and the class names (None where the member has none)."""
  r = static.arch.resolution
  return {"input": f"images: float32 NHWC (batch, {r}, {r}, 3), RGB on [0, 1] then "
                   "(x - mean) / std", "output": "logits: float32 (batch, num_classes)",
          "resolution": r, "mean": list(static.mean), "std": list(static.std),
          **(static.preprocess or PALETTE_PREPROCESS), "num_classes": static.num_classes,
          "class_names": list(static.class_names) if static.class_names else None}


def is_static(params_dir: str) -> bool:
  """Whether meta.json says `params_dir` is a static model (False when it is unreadable:
  the reader that follows names the problem)."""
  path = os.path.join(params_dir, META_FILE)
  try:
    with open(path) as f:
      return json.load(f).get("kind") == KIND
  except (OSError, ValueError, AttributeError):
    return False


def load(params_dir: str) -> StaticModel:
  """Reads a directory written by `save` (its checksums checked first)."""
  params_dir = os.path.abspath(params_dir)
  meta = stored_dir.read_meta(params_dir, WRITTEN_BY)
  if meta.get("kind") != KIND:
    raise ValueError(f"{params_dir}: not a static model directory (meta.json kind is "
                     f"{meta.get('kind')!r}, expected {KIND!r})")
  space = space_from_config(meta["space"])
  arch = arch_lib.validate(space, arch_lib.Arch.from_dict(meta["arch"]))
  variables = stored_dir.read_variables(params_dir, WRITTEN_BY)
  model = static_net.StaticNet(space, arch, meta["num_classes"])
  names = meta.get("class_names")
  return StaticModel(model, variables, space, arch, meta["num_classes"], tuple(meta["mean"]),
                     tuple(meta["std"]), meta.get("info", {}),
                     tuple(names) if names else None, meta.get("preprocess"))

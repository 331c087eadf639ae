"""Standalone static models: one palette member with its recalibrated BN.

A directory holds `variables/` (orbax; the StaticNet's own, sliced from the
supernet) and `meta.json` (kind 'static', the space, the arch, classes,
normalisation and what the palette measured). `load` rebuilds the StaticNet;
`python -m tofa_jax.predict --params=DIR` runs it.
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


WRITTEN_BY = "python -m tofa_jax.palette (palette.export=True)"


def save(out_dir: str, space: SearchSpace, arch: arch_lib.Arch, supernet_variables: dict,
         num_classes: int, mean, std, info: dict[str, Any] | None = None) -> None:
  """Extracts `arch` from calibrated supernet variables and writes it to `out_dir`."""
  out_dir = os.path.abspath(out_dir)
  if os.path.exists(os.path.join(out_dir, VARIABLES_DIR)):
    raise ValueError(f"{out_dir}: {VARIABLES_DIR}/ exists already; choose a new directory")
  _, variables = static_net.extract(space, arch, supernet_variables, num_classes)
  stored_dir.write(out_dir, variables, {
      "kind": KIND, "space": dataclasses.asdict(space), "arch": arch.to_dict(per_layer=True),
      "num_classes": num_classes, "mean": list(mean), "std": list(std), "info": info or {}})


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
  return StaticModel(model, variables, space, arch, meta["num_classes"], tuple(meta["mean"]),
                     tuple(meta["std"]), meta.get("info", {}))

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
from tofa_jax.weights.params_dir import META_FILE, VARIABLES_DIR, jax_to_numpy

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


def save(out_dir: str, space: SearchSpace, arch: arch_lib.Arch, supernet_variables: dict,
         num_classes: int, mean, std, info: dict[str, Any] | None = None) -> None:
  """Extracts `arch` from calibrated supernet variables and writes it to `out_dir`."""
  import orbax.checkpoint as ocp

  out_dir = os.path.abspath(out_dir)
  path = os.path.join(out_dir, VARIABLES_DIR)
  if os.path.exists(path):
    raise ValueError(f"{out_dir}: {VARIABLES_DIR}/ exists already; choose a new directory")
  os.makedirs(out_dir, exist_ok=True)
  _, variables = static_net.extract(space, arch, supernet_variables, num_classes)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(path, jax_to_numpy(variables))
  meta = {"kind": KIND, "space": dataclasses.asdict(space),
          "arch": arch.to_dict(per_layer=True), "num_classes": num_classes,
          "mean": list(mean), "std": list(std), "info": info or {}}
  with open(os.path.join(out_dir, META_FILE), "w") as f:
    json.dump(meta, f, indent=1)


def is_static(params_dir: str) -> bool:
  path = os.path.join(params_dir, META_FILE)
  if not os.path.isfile(path):
    return False
  with open(path) as f:
    return json.load(f).get("kind") == KIND


def load(params_dir: str) -> StaticModel:
  import orbax.checkpoint as ocp

  params_dir = os.path.abspath(params_dir)
  with open(os.path.join(params_dir, META_FILE)) as f:
    meta = json.load(f)
  if meta.get("kind") != KIND:
    raise ValueError(f"{params_dir}: not a static model directory (meta.json kind is "
                     f"{meta.get('kind')!r}, expected {KIND!r})")
  space = space_from_config(meta["space"])
  arch = arch_lib.validate(space, arch_lib.Arch.from_dict(meta["arch"]))
  with ocp.StandardCheckpointer() as ckptr:
    variables = jax_to_numpy(ckptr.restore(os.path.join(params_dir, VARIABLES_DIR)))
  model = static_net.StaticNet(space, arch, meta["num_classes"])
  return StaticModel(model, variables, space, arch, meta["num_classes"], tuple(meta["mean"]),
                     tuple(meta["std"]), meta.get("info", {}))

"""A params directory: converted supernet variables with what they hold.

`save` writes DIR/variables (orbax) and DIR/meta.json (space, arch, classes,
mean/std, source); `load` reads it back as a `Converted`. Palette members
(`export.py`) use the same two names with a static subnet inside.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from tofa_jax.space import arch as arch_lib
from tofa_jax.space.search_space import SearchSpace, space_from_config

META_FILE = "meta.json"
VARIABLES_DIR = "variables"


@dataclasses.dataclass
class Converted:
  """A converted checkpoint: max-size supernet variables and what they hold.

  Attributes:
    space: the search space the variables belong to.
    variables: {'params', 'batch_stats'} at the space's max size (NumPy).
    arch: the checkpoint's own network, as a subnet of `space`.
    num_classes: classifier outputs of the checkpoint.
    mean, std: input normalisation the checkpoint expects, on [0, 1] pixels.
    format: the source format.
    source: the source file.
  """

  space: SearchSpace
  variables: dict
  arch: arch_lib.Arch
  num_classes: int
  mean: tuple[float, float, float]
  std: tuple[float, float, float]
  format: str
  source: str = ""


def jax_to_numpy(tree: Any) -> Any:
  """Nested dicts of arrays -> nested dicts of writable NumPy arrays."""
  if isinstance(tree, Mapping):
    return {k: jax_to_numpy(v) for k, v in tree.items()}
  return np.array(tree)


def save(converted: Converted, out_dir: str) -> None:
  """Writes OUT/variables (orbax) and OUT/meta.json."""
  import orbax.checkpoint as ocp

  out_dir = os.path.abspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, VARIABLES_DIR)
  if os.path.exists(path):
    raise ValueError(f"--out={out_dir}: {VARIABLES_DIR}/ exists already; choose a new directory")
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(path, converted.variables)
  meta = {
      "format": converted.format, "source": converted.source,
      "space": dataclasses.asdict(converted.space),
      "arch": converted.arch.to_dict(per_layer=True),
      "num_classes": converted.num_classes,
      "mean": list(converted.mean), "std": list(converted.std),
  }
  with open(os.path.join(out_dir, META_FILE), "w") as f:
    json.dump(meta, f, indent=1)


def load(params_dir: str) -> Converted:
  """Reads a directory written by `save`."""
  import orbax.checkpoint as ocp

  params_dir = os.path.abspath(params_dir)
  meta_path = os.path.join(params_dir, META_FILE)
  if not os.path.isfile(meta_path):
    raise ValueError(f"--params={params_dir}: no {META_FILE}; expected a directory written by "
                     "python -m tofa_jax.convert_torch")
  with open(meta_path) as f:
    meta = json.load(f)
  space = space_from_config(meta["space"])
  with ocp.StandardCheckpointer() as ckptr:
    variables = ckptr.restore(os.path.join(params_dir, VARIABLES_DIR))
  variables = jax_to_numpy(variables)
  arch = arch_lib.Arch.from_dict(meta["arch"])
  return Converted(space, variables, arch, meta["num_classes"], tuple(meta["mean"]),
                   tuple(meta["std"]), meta["format"], meta.get("source", ""))

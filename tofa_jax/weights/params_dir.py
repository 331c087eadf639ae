"""A params directory: converted supernet variables with what they hold.

`save` writes DIR/variables (orbax) and DIR/meta.json (space, arch, classes,
mean/std, source); `load` reads it back as a `Converted`. Palette members
(`export.py`) use the same two names with a static subnet inside.
"""

from __future__ import annotations

import dataclasses
import os

from tofa_jax.space import arch as arch_lib
from tofa_jax.space.search_space import SearchSpace, space_from_config
from tofa_jax.weights import stored_dir
from tofa_jax.weights.stored_dir import META_FILE, VARIABLES_DIR

__all__ = ["META_FILE", "Converted", "load", "save"]


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
    class_names: the classes' names by index, where known (ImageNet-1k: WordNet ids).
  """

  space: SearchSpace
  variables: dict
  arch: arch_lib.Arch
  num_classes: int
  mean: tuple[float, float, float]
  std: tuple[float, float, float]
  format: str
  source: str = ""
  class_names: tuple[str, ...] | None = None


WRITTEN_BY = "python -m tofa_jax.convert_torch"


def save(converted: Converted, out_dir: str) -> None:
  """Writes OUT/variables (orbax) and OUT/meta.json, with their checksums."""
  out_dir = os.path.abspath(out_dir)
  if os.path.exists(os.path.join(out_dir, VARIABLES_DIR)):
    raise ValueError(f"--out={out_dir}: {VARIABLES_DIR}/ exists already; choose a new directory")
  stored_dir.write(out_dir, converted.variables, {
      "format": converted.format, "source": converted.source,
      "space": dataclasses.asdict(converted.space),
      "arch": converted.arch.to_dict(per_layer=True),
      "num_classes": converted.num_classes,
      "mean": list(converted.mean), "std": list(converted.std),
      **({"class_names": list(converted.class_names)} if converted.class_names else {}),
  })


def load(params_dir: str) -> Converted:
  """Reads a directory written by `save` (its checksums checked first)."""
  params_dir = os.path.abspath(params_dir)
  meta = stored_dir.read_meta(params_dir, WRITTEN_BY)
  space = space_from_config(meta["space"])
  variables = stored_dir.read_variables(params_dir, WRITTEN_BY)
  arch = arch_lib.Arch.from_dict(meta["arch"])
  names = meta.get("class_names")
  return Converted(space, variables, arch, meta["num_classes"], tuple(meta["mean"]),
                   tuple(meta["std"]), meta["format"], meta.get("source", ""),
                   tuple(names) if names else None)

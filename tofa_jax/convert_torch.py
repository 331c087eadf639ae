"""CLI: a PyTorch checkpoint -> a params directory of supernet variables.

  python -m tofa_jax.convert_torch --format=efficientnet_lite --src=FILE.pth \\
      --space=lite0 --out=DIR

writes DIR/variables (orbax) and DIR/meta.json (space, arch, classes, mean/std).
Formats and how a conversion is verified: `weights/` and docs/checkpoints.md.
"""

from __future__ import annotations

import os
import sys

from tofa_jax.space import search_space
from tofa_jax.weights import params_dir
from tofa_jax.weights.convert import convert_file
from tofa_jax.weights.torch_formats import FORMATS, format_error


def main(argv: list[str]) -> None:
  from absl import flags, logging

  logging.set_verbosity(logging.WARNING)  # orbax logs every file at INFO

  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  f = flags.FLAGS
  try:
    for name in ("format", "src", "space", "out"):
      if not getattr(f, name):
        raise ValueError(f"--{name} is required")
    if f.format not in FORMATS:
      raise format_error(f.format)
    space = search_space.get_space(f.space)
    converted = convert_file(f.format, f.src, space, resolution=f.resolution)
    params_dir.save(converted, f.out)
  except ValueError as e:
    sys.exit(f"error: {e}")
  print(f"format: {converted.format}  space: {space.name}  classes: {converted.num_classes}")
  print(f"arch: {converted.arch.to_json(space.per_layer)}")
  print(f"mean: {converted.mean}  std: {converted.std}")
  print(f"wrote {os.path.abspath(f.out)}")


def _define_flags() -> None:
  from absl import flags

  flags.DEFINE_string("format", None, f"one of {', '.join(FORMATS)}")
  flags.DEFINE_string("src", None, "PyTorch checkpoint (.pth / .pth.tar)")
  flags.DEFINE_string("space", None, "target search space name")
  flags.DEFINE_string("out", None, "output directory")
  flags.DEFINE_integer("resolution", None, "resolution recorded in the checkpoint's arch")


if __name__ == "__main__":
  from absl import app

  _define_flags()
  app.run(main)

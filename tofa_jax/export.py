"""CLI: each palette member as a deployable file, checked on the run's test split.

  python -m tofa_jax.export --workdir=DIR [--palette=NAME] --format=onnx
  python -m tofa_jax.export --palette=DIR/palettes/NAME --format=tflite --int8

--palette is a palette's name in --workdir (default: the newest there), its
folder or its palette.json. Writes `model.onnx` (batch free; class names and
preprocessing in its metadata_props) or `model.tflite` (batch 1; with --int8
also `model_int8.tflite`; the same in a sidecar `model.tflite.json`) next to
each member's static model: normalised NHWC float32 images at the member's
resolution in, logits out. Unless --evaluate=false, each file's test top-1 in
its runtime is added to palette.json and palette.csv. docs/export.md has the
details.
"""

from __future__ import annotations

import sys

from tofa_jax.search.deployed import FORMATS, export_palette
from tofa_jax.search.palette_store import find


def main(argv: list[str]) -> None:
  from absl import flags, logging

  logging.set_verbosity(logging.WARNING)  # orbax logs every file at INFO
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  f = flags.FLAGS
  try:
    export_palette(find(f.palette, f.workdir), f.format, int8=f.int8, evaluate=f.evaluate,
                   calibration_images=f.calibration_images, threads=f.threads)
  except ValueError as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  from absl import app, flags

  flags.DEFINE_string("palette", "", "a palette's name in --workdir, its folder "
                      "(WORKDIR/palettes/NAME) or its palette.json")
  flags.DEFINE_string("workdir", "", "the run's workdir: --palette names one of its "
                      "palettes (default: the newest)")
  flags.DEFINE_string("format", "onnx", f"one of {list(FORMATS)}")
  flags.DEFINE_bool("int8", False, "tflite: also write a post-training int8 model")
  flags.DEFINE_integer("calibration_images", 100, "--int8: training images that calibrate it")
  flags.DEFINE_bool("evaluate", True, "run each file on the run's test split; record top-1")
  flags.DEFINE_integer("threads", 1, "runtime threads for --evaluate")
  app.run(main)

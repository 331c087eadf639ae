"""CLI: each palette member as a deployable file.

  python -m tofa_jax.export --palette=DIR/palette/palette.json --format=onnx

Writes `model.onnx` next to each member's static model (`export_dir` in
palette.json): normalised NHWC float32 images at the member's resolution in
('images', batch free), logits out. docs/export.md has the details.
"""

from __future__ import annotations

import json
import os
import sys

FORMATS = ("onnx",)


def export_palette(palette_json: str, fmt: str) -> list[str]:
  """The files written, one per member, in member order."""
  if fmt not in FORMATS:
    raise ValueError(f"--format={fmt!r} is unknown; choose one of {list(FORMATS)}")
  if not os.path.isfile(palette_json):
    raise ValueError(f"--palette={palette_json}: no such file (python -m tofa_jax.palette "
                     "writes DIR/palette/palette.json)")
  with open(palette_json) as f:
    members = json.load(f).get("models", [])
  from tofa_jax.weights import onnx_export

  written = []
  for m in members:
    static_dir = m.get("export_dir")
    if not static_dir or not os.path.isdir(static_dir):
      raise ValueError(f"--palette={palette_json}: member {m.get('member')} has no static "
                       f"model directory ({static_dir!r}); run the palette with "
                       "palette.export=True")
    written.append(onnx_export.convert_member(static_dir))
  return written


def main(argv: list[str]) -> None:
  from absl import flags, logging

  logging.set_verbosity(logging.WARNING)  # orbax logs every file at INFO
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  try:
    written = export_palette(flags.FLAGS.palette, flags.FLAGS.format)
  except ValueError as e:
    sys.exit(f"error: {e}")
  for path in written:
    print(f"wrote {path}")


if __name__ == "__main__":
  from absl import app, flags

  flags.DEFINE_string("palette", None, "palette.json written by python -m tofa_jax.palette")
  flags.DEFINE_string("format", "onnx", f"one of {list(FORMATS)}")
  flags.mark_flags_as_required(["palette"])
  app.run(main)

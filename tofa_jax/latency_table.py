"""CLI: a latency lookup table for this machine, one timing per layer configuration.

  python -m tofa_jax.latency_table --config=configs/cifar10.py --runtime=onnxruntime \
      --out=lut.json [--threads=1] [--resolutions=160,224] [--num_classes=10]
  python -m tofa_jax.palette --config=... --config.palette.metric=latency \
      --config.palette.latency_table=lut.json

Run it on the target device (a Raspberry Pi through onnxruntime or tflite). The space
is the config's (`model.space`, `model.resolutions`); --num_classes defaults to the
config's dataset's class count when its data is at hand, else 1000 (ImageNet) when the
config names no dataset. `deploy/latency_table.py` says what is timed and how
subnets are predicted; docs/export.md has the details.
"""

from __future__ import annotations

import sys


def _num_classes(f) -> int:
  if f.num_classes is not None:
    return f.num_classes
  if not f.config.data.get("name"):
    return 1000
  from tofa_jax.config import facts
  from tofa_jax.data import datasets

  known = facts.num_classes(f.config.data)  # without reading the images
  if known is not None:
    return known
  try:
    return datasets.load(f.config.data, "train").num_classes
  except ValueError as e:
    raise ValueError(f"{e}; or give --num_classes (the palette run's class count)") from None


def main(argv: list[str]) -> None:
  from absl import flags, logging

  from tofa_jax.config import validate
  from tofa_jax.deploy import latency_table
  from tofa_jax.runtime import extras

  logging.set_verbosity(logging.WARNING)  # jax2onnx logs every conversion at INFO
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  f = flags.FLAGS
  try:
    if f.config is None:
      raise ValueError("give --config (its `model` names the space)")
    space = validate.model(f.config)  # model.* keys, and the space they name
    if f.runtime in extras.BY_RUNTIME:
      extras.require(extras.BY_RUNTIME[f.runtime], f"--runtime={f.runtime}")
    resolutions = [int(r) for r in f.resolutions] if f.resolutions else None
    table = latency_table.build(space, f.runtime, f.threads, _num_classes(f), f.warmup,
                                f.repeats, resolutions)
  except ValueError as e:
    sys.exit(f"error: {e}")
  latency_table.save(table, f.out)
  print(f"wrote {f.out}: {len(table['entries'])} entries, {table['build_s']:.0f} s")


if __name__ == "__main__":
  from absl import flags
  from ml_collections import config_flags

  from tofa_jax.config import flag_errors

  config_flags.DEFINE_config_file("config", None, "config whose `model` names the space",
                                  lock_config=True)
  flags.DEFINE_string("runtime", "onnxruntime", "jax | onnxruntime | tflite")
  flags.DEFINE_string("out", None, "where to write the table (JSON)")
  flags.DEFINE_integer("threads", 1, "runtime threads (recorded; jax uses XLA's own pool)")
  flags.DEFINE_integer("warmup", 5, "untimed calls per layer before timing")
  flags.DEFINE_integer("repeats", 30, "timed calls per layer: the median")
  flags.DEFINE_integer("num_classes", None,
                       "classifier outputs (default: the config's dataset's, else 1000)")
  flags.DEFINE_list("resolutions", None, "resolutions to cover (default: the config's space's)")
  flags.mark_flags_as_required(["out"])
  flag_errors.run(main)

"""Downloads and prepares a TFDS dataset once (ArrayRecord), for TF-free training.

  pip install tensorflow-cpu   # only here: TFDS encodes images with TensorFlow
  python -m tofa_jax.prepare_data --dataset=aircraft [--data_dir=DIR]

Works on Colab and on any machine with a network. Training then reads the data
with `tfds.data_source` and grain, without TensorFlow.
"""

from __future__ import annotations

import sys

from absl import app, flags

from tofa_jax.data import datasets
from tofa_jax.runtime import extras

_DATASET = flags.DEFINE_string("dataset", None, f"one of {sorted(datasets.TFDS_NAMES)}")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: TFDS's)")


def main(argv: list[str]) -> None:
  del argv
  name = _DATASET.value
  if name not in datasets.TFDS_NAMES:
    sys.exit(f"error: --dataset={name!r} is unknown; choose one of {sorted(datasets.TFDS_NAMES)}")
  missing = extras.message("prepare", "python -m tofa_jax.prepare_data")  # before the download
  if missing:
    sys.exit(f"error: {missing}")
  import tensorflow_datasets as tfds

  if name == "aircraft":
    from tofa_jax.data import fgvc_aircraft  # noqa: F401 - registers the builder
  builder = tfds.builder(datasets.TFDS_NAMES[name], data_dir=_DATA_DIR.value,
                         file_format="array_record")
  builder.download_and_prepare()
  print(f"prepared {builder.info.full_name} in {builder.data_dir}")


if __name__ == "__main__":
  app.run(main)

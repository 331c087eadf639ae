"""Downloads and prepares a TFDS dataset once (ArrayRecord), for TF-free training.

  pip install -e '.[prepare]'   # only here: TFDS encodes images with TensorFlow
  python -m tofa_jax.prepare_data --dataset=aircraft [--data_dir=DIR]

Works on Colab and on any machine with a network. Training then reads the data
with `tfds.data_source` and grain, without TensorFlow. Cars cannot be prepared:
TFDS's `cars196` download is gone (`datasets.TFDS_GONE` says what to use instead).
"""

from __future__ import annotations

import sys

from absl import app, flags

from tofa_jax.data import datasets
from tofa_jax.runtime import extras

_DATASET = flags.DEFINE_string("dataset", None, f"one of {sorted(datasets.TFDS_NAMES)}")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: TFDS's)")


def prepare(name: str, data_dir: str | None):
  """Downloads and prepares dataset `name` (a key of `datasets.TFDS_NAMES`) in
  `data_dir`; returns its TFDS builder. A failed download raises a one-line
  ValueError, with the way around it where the source is known to be gone."""
  if name not in datasets.TFDS_NAMES:
    raise ValueError(f"--dataset={name!r} is unknown; choose one of {sorted(datasets.TFDS_NAMES)}")
  missing = extras.message("prepare", "python -m tofa_jax.prepare_data")  # before the download
  if missing:
    raise ValueError(missing)
  import tensorflow_datasets as tfds

  if name == "aircraft":
    from tofa_jax.data import fgvc_aircraft  # noqa: F401 - registers the builder
  builder = tfds.builder(datasets.TFDS_NAMES[name], data_dir=data_dir, file_format="array_record")
  try:
    builder.download_and_prepare()
  except tfds.download.DownloadError as e:
    first = (str(e).strip().splitlines() or [""])[0]
    hint = datasets.TFDS_GONE.get(builder.name, "check the network and run it again")
    raise ValueError(f"--dataset={name}: TFDS {builder.name}'s download failed ({first}); "
                     f"{hint}") from None
  return builder


def main(argv: list[str]) -> None:
  del argv
  try:
    builder = prepare(_DATASET.value, _DATA_DIR.value)
  except ValueError as e:
    sys.exit(f"error: {e}")
  print(f"prepared {builder.info.full_name} in {builder.data_dir}")


if __name__ == "__main__":
  app.run(main)

"""A TFDS builder for FGVC-Aircraft 2013b (TFDS has none): 100 aircraft variants,
splits train (3,334), val (3,333), trainval (6,667) and test (3,333).

Importing this module registers `fgvc_aircraft` with TFDS. Preparing it downloads
the official archive (2.6 GB) and encodes images, which needs TensorFlow:
  pip install -e '.[prepare]' && python -m tofa_jax.prepare_data --dataset=aircraft
Reading it afterwards (`tfds.data_source`) does not.

The bottom 20 rows of every image carry a copyright banner; as the dataset's
README advises, they are cropped off here.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

URL = "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz"
BANNER_ROWS = 20
SPLITS = ("train", "val", "trainval", "test")
NUM_VARIANTS = 100


def read_variants(data_dir: str) -> list[str]:
  with open(os.path.join(data_dir, "variants.txt")) as f:
    return [line.strip() for line in f if line.strip()]


def read_split(data_dir: str, split: str) -> list[tuple[str, str]]:
  """[(image id, variant)] from images_variant_<split>.txt ('1025794 707-320')."""
  with open(os.path.join(data_dir, f"images_variant_{split}.txt")) as f:
    return [tuple(line.strip().split(" ", 1)) for line in f if line.strip()]


def load_image(path: str) -> np.ndarray:
  from PIL import Image

  with Image.open(path) as img:
    rgb = np.asarray(img.convert("RGB"))
  return rgb[:-BANNER_ROWS] if rgb.shape[0] > BANNER_ROWS else rgb


class FgvcAircraft(tfds.core.GeneratorBasedBuilder):
  """FGVC-Aircraft 2013b, variant level (100 classes)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Variant labels; copyright banner cropped."}

  def _info(self) -> tfds.core.DatasetInfo:
    # Only the count here: a ClassLabel's names can be set once, and the real ones are
    # known only once the archive is read (`_split_generators`); a prepared dataset
    # restores them from its label.labels.txt.
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(num_classes=NUM_VARIANTS),
        }),
        supervised_keys=("image", "label"),
        homepage="https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/",
    )

  def _split_generators(self, dl_manager):
    root = dl_manager.download_and_extract(URL)
    data_dir = os.path.join(root, "fgvc-aircraft-2013b", "data")
    variants = read_variants(data_dir)
    if len(variants) != NUM_VARIANTS:
      raise ValueError(f"{os.path.join(data_dir, 'variants.txt')}: {len(variants)} variants, "
                       f"expected FGVC-Aircraft 2013b's {NUM_VARIANTS}; is it the official "
                       f"archive ({URL})?")
    self.info.features["label"].names = variants
    return {split: self._generate_examples(data_dir, split, variants) for split in SPLITS}

  def _generate_examples(self, data_dir: str, split: str, variants: list[str]):
    index = {v: i for i, v in enumerate(variants)}
    for image_id, variant in read_split(data_dir, split):
      path = os.path.join(data_dir, "images", f"{image_id}.jpg")
      yield image_id, {"image": load_image(path), "label": index[variant]}

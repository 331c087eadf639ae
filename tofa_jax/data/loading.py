"""A run's data from its config: train and test sources, and the labelled,
unlabelled and held-out validation index sets (`data.num_labelled`,
`data.fully_labelled`, `data.unlabelled_folder`, `data.val_fraction`); folder
data is checked image by image on the way (`data.bad_images`, `image_files.py`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tofa_jax.data import datasets


@dataclasses.dataclass
class Data:
  train: Any
  test: Any
  unlabelled: Any
  labelled_idx: np.ndarray
  unlabelled_idx: np.ndarray
  num_classes: int
  val_idx: np.ndarray  # held out of `train` (data.val_fraction), for search baselines
  class_names: tuple[str, ...] | None = None  # by class index; stored with the members


def load_data(config) -> Data:
  d = config.data
  train = datasets.load(d, "train")
  test = datasets.load(d, "test")
  labels = np.asarray(train.labels)
  pool, val = datasets.validation_split(labels, float(d.get("val_fraction", 0.0)), config.seed)
  if d.get("fully_labelled", False):
    lab, unl = pool, np.arange(0)
  else:
    lab, unl = datasets.labelled_split(labels[pool], int(d.num_labelled), train.num_classes,
                                       config.seed)
    lab, unl = pool[lab], pool[unl]
  unlabelled = train
  if d.get("unlabelled_folder"):
    unlabelled = datasets.FolderSource(d.unlabelled_folder, labelled=False,
                                       bad_images=d.get("bad_images", "stop"),
                                       key="data.unlabelled_folder")
    unl = np.arange(len(unlabelled))
  return Data(train, test, unlabelled, lab, unl, train.num_classes, val,
              datasets.class_names(train))

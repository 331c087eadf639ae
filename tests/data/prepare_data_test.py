"""prepare_data and the TFDS loader where a dataset's download is gone (cars196): one
line naming the dataset and the folder-source override that replaces it."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from PIL import Image

from configs import cars
from helpers.configs import set_key
from tofa_jax import prepare_data
from tofa_jax.data import datasets

# What TFDS 4.9.10's cars196 meets today (tensorflow/datasets issue 5656).
GONE = "Failed to get url https://ai.stanford.edu/~jkrause/cars/car_devkit.tgz. HTTP code: 404."


def test_a_dead_cars196_download_ends_in_one_line_naming_the_folder_override(tmp_path,
                                                                            monkeypatch):
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core.download import downloader

  urls = []

  def open_url(url, **kwargs):
    urls.append(url)
    raise tfds.download.DownloadError(GONE)

  monkeypatch.setattr(downloader, "_open_url", open_url)
  with pytest.raises(ValueError) as e:
    prepare_data.prepare("cars", str(tmp_path))
  assert urls and all("ai.stanford.edu/~jkrause" in u for u in urls)
  msg = str(e.value)
  assert "\n" not in msg
  assert msg.startswith(f"--dataset=cars: TFDS cars196's download failed ({GONE}); TFDS's "
                        "cars196 download (ai.stanford.edu/~jkrause) is gone")
  assert msg.endswith(datasets.STANFORD_CARS_FOLDER)


def test_other_download_failures_say_so_in_one_line(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core.download import downloader

  def open_url(url, **kwargs):
    raise tfds.download.DownloadError(f"Failed to get url {url}. HTTP code: 503.")

  monkeypatch.setattr(downloader, "_open_url", open_url)
  with pytest.raises(ValueError, match=r"^--dataset=flowers: TFDS oxford_flowers102's download "
                     r"failed \(Failed to get url .*HTTP code: 503\.\); check the network and "
                     r"run it again$"):
    prepare_data.prepare("flowers", str(tmp_path))


def test_unprepared_cars_names_the_folder_override(tmp_path):
  with pytest.raises(ValueError) as e:
    datasets.load(cars.get_config().data.to_dict() | {"data_dir": str(tmp_path)}, "train")
  msg = str(e.value)
  assert "\n" not in msg
  assert msg == (f"data.name='cars196' split 'train': not prepared in data.data_dir={tmp_path}; "
                 f"{datasets.TFDS_GONE['cars196']}")


def test_the_folder_override_loads_a_stanford_cars_copy(tmp_path):
  # The Kaggle copy's layout: car_data/car_data/{train,test}/<class name>/<image>.jpg.
  classes = ["AM General Hummer SUV 2000", "Ram C-V Cargo Van Minivan 2012"]
  for split, n in (("train", 3), ("test", 2)):
    for c in classes:
      folder = tmp_path / "car_data" / "car_data" / split / c
      os.makedirs(folder)
      for i in range(n):
        Image.fromarray(np.zeros((6, 9, 3), np.uint8)).save(folder / f"{i:05d}.jpg")
  config = cars.get_config()
  overrides = re.findall(r"--config\.(\S+)=(\S+)", datasets.STANFORD_CARS_FOLDER)
  assert [k for k, _ in overrides] == ["data.name", "data.folder", "data.test_folder"]
  for key, value in overrides:
    set_key(config, key, value.replace("DIR", str(tmp_path)))
  train, test = datasets.load(config.data, "train"), datasets.load(config.data, "test")
  assert (train.classes, len(train), len(test)) == (classes, 6, 4)
  assert test.labels.tolist() == [0, 0, 1, 1]

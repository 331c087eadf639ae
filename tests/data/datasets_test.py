"""Data sources: the registered FGVC-Aircraft builder on mock data (preparing it:
fgvc_aircraft_test.py), folders, bundled data, grain."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from tofa_jax.data import datasets, input_pipeline


def test_aircraft_loads_through_its_registered_builder():
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=6):
    src = datasets.TfdsSource("fgvc_aircraft", "trainval", None)
    assert (len(src), src.num_classes) == (6, 100)
    assert src[0]["image"].dtype == np.uint8 and src[0]["image"].shape[-1] == 3


def test_folder_source_and_unknown_name(tmp_path):
  for c, n in (("cat", 2), ("dog", 3)):
    os.makedirs(tmp_path / "train" / c)
    for i in range(n):
      Image.fromarray(np.zeros((9, 7, 3), np.uint8)).save(tmp_path / "train" / c / f"{i}.png")
  src = datasets.load({"name": "folder", "folder": str(tmp_path / "train"),
                       "test_folder": str(tmp_path / "train")}, "test")
  assert (len(src), src.num_classes, src.classes) == (5, 2, ["cat", "dog"])
  assert src.labels.tolist() == [0, 0, 1, 1, 1] and src[4]["image"].shape == (9, 7, 3)
  assert datasets.class_names(src) == ("cat", "dog")  # stored with every exported member
  unl = datasets.FolderSource(str(tmp_path / "train"), labelled=False)
  assert len(unl) == 5
  with pytest.raises(ValueError, match=r"data.folder=.*nope: not a directory"):
    datasets.FolderSource(str(tmp_path / "nope"))


@pytest.mark.parametrize("name,n_train,side", [("digits", 1438, 8), ("mnist5k", 4000, 28)])
def test_bundled_sources(name, n_train, side):
  train, test = datasets.bundled(name, "train"), datasets.bundled(name, "test")
  assert (len(train), len(train) + len(test), train.num_classes) == (n_train, len(train) +
                                                                      len(test), 10)
  assert train[0]["image"].shape == (side, side, 3) and train.images.dtype == np.uint8
  assert train.images.max() > 200  # full 0-255 range, not 0-16
  assert datasets.class_names(train) == datasets.class_names(test) == tuple("0123456789")


def test_train_stream_shards_resumes_and_resizes():
  src = datasets.ArraySource(np.arange(20, dtype=np.uint8).repeat(4 * 4 * 3).reshape(20, 4, 4, 3),
                             np.arange(20) % 10, 10)
  idx = np.arange(20)

  def stream(pid, count, batch=8):
    return input_pipeline.train_stream(src, idx, batch, 6, seed=0, process_index=pid,
                                       process_count=count, threads=1)

  it = stream(1, 2)
  first = next(it)
  assert first["image"].shape == (4, 6, 6, 3) and first["image"].dtype == np.uint8
  # The processes' rows, in process order, are the one-process global batch, so the
  # global batch does not depend on the number of processes.
  whole, halves = stream(0, 1), [stream(0, 2), stream(1, 2)]
  for _ in range(6):
    want = next(whole)["image"][:, 0, 0, 0]
    got = np.concatenate([next(h)["image"][:, 0, 0, 0] for h in halves])
    np.testing.assert_array_equal(got, want)
  state = it.get_state()
  want = [next(it)["label"].tolist() for _ in range(3)]
  again = stream(1, 2)
  again.set_state(state)
  assert [next(again)["label"].tolist() for _ in range(3)] == want
  with pytest.raises(ValueError, match="does not split over 3 processes"):
    stream(0, 3)


def test_eval_batches_give_every_process_the_same_number_of_batches():
  src = datasets.ArraySource(np.zeros((9, 4, 4, 3), np.uint8), np.arange(9) % 3, 3)
  per = [list(input_pipeline.eval_batches(src, 4, 4, p, 2)) for p in range(2)]
  assert [len(b) for b in per] == [2, 2]  # shards of 5 and 4, batch 4
  assert [int(b["mask"].sum()) for b in per[0]] == [4, 1]
  assert [int(b["mask"].sum()) for b in per[1]] == [4, 0]


def test_validation_split_is_stratified_seeded_and_disjoint():
  labels = np.repeat(np.arange(4), [10, 20, 30, 40])
  train, val = datasets.validation_split(labels, 0.3, seed=0)
  assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 100
  assert [int(np.sum(labels[val] == c)) for c in range(4)] == [3, 6, 9, 12]
  again, val2 = datasets.validation_split(labels, 0.3, seed=0)
  np.testing.assert_array_equal(val, val2)
  assert not np.array_equal(val, datasets.validation_split(labels, 0.3, seed=1)[1])
  assert len(datasets.validation_split(labels, 0.0, seed=0)[1]) == 0
  with pytest.raises(ValueError, match=r"data.val_fraction=1.0.*\[0, 1\)"):
    datasets.validation_split(labels, 1.0, seed=0)


def test_training_data_excludes_the_validation_split():
  from helpers.configs import tiny_config
  from tofa_jax.data import loading

  data = loading.load_data(tiny_config(**{"data.val_fraction": 0.3}))
  pool = np.concatenate([data.labelled_idx, data.unlabelled_idx])
  assert len(np.intersect1d(pool, data.val_idx)) == 0
  assert len(pool) + len(data.val_idx) == len(data.train)
  assert len(data.labelled_idx) == 50
  assert data.class_names == tuple("0123456789")  # carried to the palette's members

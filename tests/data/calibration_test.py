"""Which training images recalibrate BN: exact counts, the pool they come from, and the
one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from tofa_jax.data import calibration, datasets
from tofa_jax.data.loading import Data

TRAIN = datasets.bundled("digits", "train")  # 1,438 images


def _data(labelled, unlabelled, val=(), unlabelled_source=TRAIN) -> Data:
  return Data(TRAIN, datasets.bundled("digits", "test"), unlabelled_source,
              np.asarray(labelled), np.asarray(unlabelled), 10, np.asarray(val, np.int64))


def test_counts_are_whole_batches_of_at_least_bn_images_or_all_when_fewer():
  data = _data(np.arange(200), np.arange(200, 1438))  # the demo's split: 200 + 1,238
  # 1,000 images at 100 a batch: exactly 1,000; at 64: 16 batches, 1,024.
  assert len(calibration.indices(data, 1000, 100, seed=0)) == 1000
  assert len(calibration.indices(data, 1000, 64, seed=0)) == 1024
  assert len(calibration.indices(data, 192, 64, seed=0)) == 192  # configs/demo.py
  assert len(calibration.indices(data, 1, 64, seed=0)) == 64
  # Fewer training images than asked: all whole batches of them (1,438 = 22 x 64 + 30).
  assert len(calibration.indices(data, 5000, 64, seed=0)) == 1408
  assert len(calibration.indices(data, 5000, 719, seed=0)) == 1438


def test_labelled_and_unlabelled_training_images_never_validation_ones():
  lab, unl, val = np.arange(0, 100), np.arange(100, 1000), np.arange(1000, 1438)
  data = _data(lab, unl, val)  # val: held out of training (data.val_fraction)
  calib = calibration.indices(data, 5000, 100, seed=0)
  assert len(calib) == 1000 == len(np.unique(calib))
  np.testing.assert_array_equal(np.sort(calib), np.arange(1000))  # every training image
  # A seeded draw: the same for one seed, another for another.
  some = calibration.indices(data, 300, 100, seed=0)
  np.testing.assert_array_equal(some, calibration.indices(data, 300, 100, seed=0))
  assert not np.array_equal(some, calibration.indices(data, 300, 100, seed=1))
  assert np.isin(some, lab).any() and np.isin(some, unl).any()
  # Excluded images (the palette's own validation split) leave the others in their order.
  carved = some[::3]
  rest = calibration.indices(data, 300, 100, seed=0, exclude=carved)
  assert len(rest) == 300 and not np.isin(rest, carved).any()
  kept = some[~np.isin(some, carved)]
  np.testing.assert_array_equal(rest[:len(kept)], kept)
  # Unlabelled images from data.unlabelled_folder are another source: labelled ones only.
  folder = _data(lab, np.arange(50), unlabelled_source=object())
  assert np.isin(calibration.indices(folder, 1000, 10, seed=0), lab).all()
  assert len(calibration.indices(folder, 1000, 10, seed=0)) == 100


def test_errors_name_the_key_and_the_allowed_values():
  data = _data(np.arange(50), np.arange(0))
  with pytest.raises(ValueError, match=r"^evals\.bn_images=0 is out of range; allowed: "
                                       r"evals\.bn_images >= 1$"):
    calibration.indices(data, 0, 10, seed=0)
  with pytest.raises(ValueError, match=r"^evals\.batch_size=64 exceeds the 50 training images "
                                       r"that recalibrate BN; allowed: evals\.batch_size "
                                       r"<= 50$"):
    calibration.indices(data, 1000, 64, seed=0)

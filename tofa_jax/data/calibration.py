"""Which training images recalibrate BN: one rule for the trainer's evaluation, the
palette (its test and validation scores) and so the study.

`evals.bn_images` images (configs/default.py: 1,000; OFA recalibrates on about 2,000),
or all of them when the run has fewer, drawn from the run's training images:
- the training split's images the run trains on, labelled and unlabelled alike (BN
  statistics use no labels, and the unlabelled images are the same distribution);
- never the validation images held out of training (`data.val_fraction`), nor those
  the caller excludes (the palette's own validation split, `palette.val_fraction`);
- not `data.unlabelled_folder` images, which may come from elsewhere.
The draw is a seeded permutation of that pool (`config.seed`): a run's evaluation and
its palette recalibrate every subnet on the same images, so they score it alike.

Recalibration averages per-batch statistics, and a padded batch would skew them, so
the images come in whole batches of `evals.batch_size`: `evals.bn_images` rounded up
to whole batches (1,000 at 64 a batch: 16 batches, 1,024 images) where the pool holds
them, else every whole batch of the pool (all but fewer than one batch of its images).
"""

from __future__ import annotations

import math

import numpy as np

from tofa_jax.data.loading import Data

SALT = 0xB7  # the draw's stream, apart from the run's other uses of its seed


def pool(data: Data) -> np.ndarray:
  """Indices into `data.train` of the training images that may recalibrate BN."""
  if data.unlabelled is data.train:
    return np.union1d(data.labelled_idx, data.unlabelled_idx)
  return np.sort(np.asarray(data.labelled_idx))


def indices(data: Data, bn_images: int, batch_size: int, seed: int,
            exclude: np.ndarray | None = None) -> np.ndarray:
  """Indices into `data.train` of the images that recalibrate BN, `batch_size` images
  per batch, in the order they are batched (see the module docstring for the rule).

  Raises a one-line ValueError when `bn_images` < 1 or the pool holds no whole batch.
  """
  if bn_images < 1:
    raise ValueError(f"evals.bn_images={bn_images} is out of range; allowed: "
                     "evals.bn_images >= 1")
  drawn = np.random.default_rng([seed, SALT]).permutation(pool(data))
  if exclude is not None and len(exclude):
    drawn = drawn[~np.isin(drawn, exclude)]  # the others keep their places in the draw
  batches = min(math.ceil(bn_images / batch_size), len(drawn) // batch_size)
  if batches < 1:
    raise ValueError(f"evals.batch_size={batch_size} exceeds the {len(drawn)} training "
                     "images that recalibrate BN; allowed: evals.batch_size <= "
                     f"{len(drawn)}")
  return drawn[:batches * batch_size]


def of_config(config, data: Data, exclude: np.ndarray | None = None) -> np.ndarray:
  """`indices` for a run's config: `evals.bn_images`, `evals.batch_size`, `seed`."""
  return indices(data, int(config.evals.bn_images), int(config.evals.batch_size),
                 int(config.seed), exclude)


def describe(count: int, data: Data) -> str:
  """One line for the logs: how many images recalibrate BN, of how many."""
  return (f"BN recalibration on {count} of the {len(pool(data))} training images "
          "(evals.bn_images, whole batches of evals.batch_size)")

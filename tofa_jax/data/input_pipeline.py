"""grain pipelines: labelled/unlabelled training streams and the test split.

Training streams are defined globally and read locally: the record indices are
shuffled with the run's seed, repeated and cut into global batches; process p
of P takes rows [p*B/P, (p+1)*B/P) of each global batch and decodes only those
images (resized to the training resolution: uint8, shorter side then centre
crop). `jax.make_array_from_process_local_data` then assembles, in process
order, the same global batch whatever the number of processes, so a run on
2 hosts x 4 devices sees the data a run on 1 host x 8 devices sees.
Augmentation happens later, on device (`augment.py`). Iterator states are plain
dicts, saved in checkpoints.

Evaluation splits are sharded `process_index::process_count` and padded so that
every process yields the same number of batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grain
import numpy as np

from tofa_jax.data import preprocess

CACHE_MODES = ("auto", "on", "off")  # data.cache


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


def _local_rows(process_index: int, local: int):
  def fn(positions: np.ndarray) -> np.ndarray:
    return positions[process_index * local:(process_index + 1) * local]
  return fn


def _load_batch(records: Records, size: int):
  example = _to_example(size)

  def fn(positions: np.ndarray) -> dict[str, np.ndarray]:
    items = [example(records[int(i)]) for i in positions]
    return {"image": np.stack([it["image"] for it in items]),
            "label": np.asarray([it["label"] for it in items], np.int32)}
  return fn


def train_stream(source, indices: np.ndarray, global_batch: int, size: int, seed: int,
                 process_index: int = 0, process_count: int = 1, threads: int = 4
                 ) -> grain.DatasetIterator:
  """An endless shuffled iterator of this process's rows of each global batch:
  {'image': uint8 (B/P, S, S, 3), 'label': int32 (B/P,)}."""
  records = Records(source, indices)
  if len(records) == 0:
    raise ValueError("a training stream has no examples; add data")
  if global_batch % process_count:
    raise ValueError(f"a global batch of {global_batch} does not split over {process_count} "
                     "processes; use a multiple of the process count")
  local = global_batch // process_count
  ds = (grain.MapDataset.range(len(records)).seed(seed).shuffle().repeat()
        .batch(global_batch, drop_remainder=True)
        .map(_local_rows(process_index, local)).map(_load_batch(records, size)))
  read = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * threads)
  return iter(ds.to_iter_dataset(read))


def eval_batches(source, size: int, batch: int, process_index: int = 0, process_count: int = 1
                 ) -> Iterator[dict[str, np.ndarray]]:
  """This process's shard of the split once, in order; padding (`mask` = 0) fills
  the last batch and gives every process ceil(ceil(N / P) / batch) batches."""
  records = Records(source, shard(np.arange(len(source)), process_index, process_count))
  ds = grain.MapDataset.source(records).map(_to_example(size))
  per_process = -(-len(source) // process_count)
  for start in range(0, per_process, batch):
    items = [ds[i] for i in range(start, min(start + batch, len(ds)))]
    n = len(items)
    if n == 0:  # this process's shard is one shorter: an all-padding batch
      shape = (batch, *ds[0]["image"].shape) if len(ds) else (batch, size, size, 3)
      yield {"image": np.zeros(shape, np.uint8), "label": np.zeros(batch, np.int32),
             "mask": np.zeros(batch, np.float32)}
      continue
    images = np.stack([it["image"] for it in items])
    labels = np.asarray([it["label"] for it in items], np.int32)
    pad = batch - n
    if pad:
      images = np.concatenate([images, np.zeros((pad, *images.shape[1:]), np.uint8)])
      labels = np.concatenate([labels, np.zeros(pad, np.int32)])
    yield {"image": images, "label": labels,
           "mask": np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])}

"""grain pipelines: labelled/unlabelled training streams and the test split.

Training streams are defined globally and read locally: the record indices are
shuffled with the run's seed, repeated and cut into global batches; process p
of P takes rows [p*B/P, (p+1)*B/P) of each global batch and reads only those
images (resized to the training resolution: uint8, shorter side then centre
crop). `jax.make_array_from_process_local_data` then assembles, in process
order, the same global batch whatever the number of processes, so a run on
2 hosts x 4 devices sees the data a run on 1 host x 8 devices sees.
Augmentation happens later, on device (`augment.py`). A stream's state is the
index of its next batch, `{'next_index': k}` (grain's own format), saved in
checkpoints; it does not depend on threads, workers or the cache.

The decoded cache (`data.cache`, `decoded_cache.py`) holds each record of a
stream decoded and resized once; batches are then rows copied out of a
memory-mapped file, bitwise equal to decoding afresh. Every process caches every
record of its streams: the shuffled global batches give each process every record
over the epochs. `data.workers > 0` reads in grain worker processes
(`mp_prefetch`), which helps only where decoding remains (no cache).

Evaluation splits are sharded `process_index::process_count` and padded so that
every process yields the same number of batches; they are read with the same
batch reader, in threads, and cached per resolution when a cache is given.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from typing import Any

import grain
import numpy as np

from tofa_jax.data import decoded_cache, preprocess

CACHE_MODES = ("auto", "on", "off")  # data.cache
DEFAULT_CACHE_DIR = "input_cache"  # under the workdir
LOCAL_CACHE_DIR = "~/.cache/tofa_jax/input_cache"  # when the workdir is an object store


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


def _underlying(records: Records) -> tuple[Any, np.ndarray]:
  """(the source that reads files, its indices) of `records`, nested Records undone."""
  source, indices = records.source, records.indices
  while isinstance(source, Records):
    source, indices = source.source, source.indices[indices]
  return source, indices


@dataclasses.dataclass(frozen=True)
class CacheSpec:
  """`data.cache` and the directory it resolves to."""

  mode: str = "off"
  directory: str = ""


def reader_options(data_cfg: Mapping[str, Any], workdir: str | None = None) -> dict[str, Any]:
  """`train_stream`'s and `eval_batches`' reader keywords from `config.data`: threads,
  the cache (in `data.cache_dir`, else `<workdir>/input_cache`, else off) and workers."""
  mode = data_cfg.get("cache", "auto")
  if mode not in CACHE_MODES:
    raise ValueError(f"data.cache={mode!r}; choose one of {list(CACHE_MODES)}")
  directory = str(data_cfg.get("cache_dir") or "")
  if "://" in directory:
    raise ValueError(f"data.cache_dir={directory}: the decoded cache is memory-mapped and "
                     "needs a local or mounted directory")
  if not directory and workdir:
    directory = (os.path.join(workdir, DEFAULT_CACHE_DIR) if "://" not in workdir
                 else LOCAL_CACHE_DIR)
  cache = CacheSpec(mode if directory else "off", os.path.expanduser(directory))
  return {"threads": int(data_cfg.get("threads", 4)), "cache": cache,
          "workers": int(data_cfg.get("workers", 0))}


def _cached(records: Records, size: int, cache: CacheSpec | None, threads: int, what: str
            ) -> decoded_cache.DecodedImages | None:
  """The decoded cache of `records` at `size` when `cache` says to use one, else None."""
  if cache is None or cache.mode == "off" or len(records) == 0:
    return None
  source, indices = _underlying(records)
  if cache.mode == "auto" and not decoded_cache.cacheable(source):
    return None
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  # The build runs before training, when nothing else needs the cores.
  return decoded_cache.open_or_build(source, indices, size, cache.directory, resize_square,
                                     max(threads, cores or 1), cache.mode == "on", what)


def shard(indices: np.ndarray, process_index: int, process_count: int) -> np.ndarray:
  return np.asarray(indices)[process_index::process_count]


def _local_rows(process_index: int, local: int):
  def fn(positions: np.ndarray) -> np.ndarray:
    return positions[process_index * local:(process_index + 1) * local]
  return fn


class BatchReader:
  """positions into `records` -> {'image': uint8 (n, S, S, 3), 'label': int32 (n,)}:
  rows of the decoded cache, or each record decoded and resized. Pickles small (a
  cache pickles as its path), for grain's worker processes."""

  def __init__(self, records: Records, size: int,
               cache: decoded_cache.DecodedImages | None = None):
    self.records, self.size, self.cache = records, size, cache

  def __call__(self, positions: np.ndarray) -> dict[str, np.ndarray]:
    positions = np.asarray(positions, np.int64)
    if self.cache is not None:
      return {"image": np.asarray(self.cache.images[positions]),
              "label": self.cache.labels[positions]}
    items = [self.records[int(i)] for i in positions]
    images = [resize_square(np.asarray(it["image"], np.uint8), self.size) for it in items]
    return {"image": (np.stack(images) if images
                      else np.zeros((0, self.size, self.size, 3), np.uint8)),
            "label": np.asarray([it["label"] for it in items], np.int32)}


class Stream:
  """An endless iterator of batches of a grain MapDataset; its state is the index of
  the next batch, so a resumed stream restarts the dataset there with any threads or
  workers. Worker processes start at the first batch after a `set_state`."""

  def __init__(self, ds: grain.MapDataset, threads: int, workers: int):
    self._ds, self._threads, self._workers = ds, threads, workers
    self._next, self._it = 0, None

  def __iter__(self) -> Stream:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self._it is None:
      ds = self._ds[self._next:] if self._next else self._ds
      read = grain.ReadOptions(num_threads=self._threads, prefetch_buffer_size=2 * self._threads)
      it_ds = ds.to_iter_dataset(read)
      if self._workers:
        _flags_parsed()
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(
            num_workers=self._workers, per_worker_buffer_size=2))
      self._it = iter(it_ds)
    batch = next(self._it)
    self._next += 1
    return batch

  def get_state(self) -> dict[str, int]:
    return {"next_index": self._next}

  def set_state(self, state: Mapping[str, Any]) -> None:
    self.close()
    self._next = int(state["next_index"])

  def close(self) -> None:
    """Stops the worker processes, if any (a later batch starts them again)."""
    if self._it is not None and hasattr(self._it, "close"):
      self._it.close()
    self._it = None


def _flags_parsed() -> None:
  """grain's worker processes read its absl flags; a library caller (a notebook, a test)
  has parsed none, and the defaults are what it means."""
  from absl import flags

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def train_stream(source, indices: np.ndarray, global_batch: int, size: int, seed: int,
                 process_index: int = 0, process_count: int = 1, threads: int = 4,
                 cache: CacheSpec | None = None, workers: int = 0) -> Stream:
  """An endless shuffled iterator of this process's rows of each global batch:
  {'image': uint8 (B/P, S, S, 3), 'label': int32 (B/P,)}. `cache` (default: none)
  and `workers` as `reader_options` gives them."""
  records = Records(source, indices)
  if len(records) == 0:
    raise ValueError("a training stream has no examples; add data")
  if global_batch % process_count:
    raise ValueError(f"a global batch of {global_batch} does not split over {process_count} "
                     "processes; use a multiple of the process count")
  local = global_batch // process_count
  reader = BatchReader(records, size, _cached(records, size, cache, threads, "training images"))
  ds = (grain.MapDataset.range(len(records)).seed(seed).shuffle().repeat()
        .batch(global_batch, drop_remainder=True)
        .map(_local_rows(process_index, local)).map(reader))
  return Stream(ds, threads, workers)


def eval_batches(source, size: int, batch: int, process_index: int = 0, process_count: int = 1,
                 threads: int = 4, cache: CacheSpec | None = None
                 ) -> Iterator[dict[str, np.ndarray]]:
  """This process's shard of the split once, in order; padding (`mask` = 0) fills
  the last batch and gives every process ceil(ceil(N / P) / batch) batches. Read in
  `threads`; `cache` (default: none) caches the shard at `size`."""
  records = Records(source, shard(np.arange(len(source)), process_index, process_count))
  reader = BatchReader(records, size, _cached(records, size, cache, threads, "test images"))
  per_process = -(-len(source) // process_count)

  def padded(start: int) -> dict[str, np.ndarray]:
    got = reader(np.arange(start, min(start + batch, len(records))))
    n, pad = len(got["label"]), batch - len(got["label"])
    return {"image": np.concatenate([got["image"],
                                     np.zeros((pad, size, size, 3), np.uint8)]),
            "label": np.concatenate([got["label"], np.zeros(pad, np.int32)]),
            "mask": np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])}

  starts = list(range(0, per_process, batch))
  read = grain.ReadOptions(num_threads=max(1, threads), prefetch_buffer_size=2 * max(1, threads))
  yield from grain.MapDataset.source(starts).map(padded).to_iter_dataset(read)

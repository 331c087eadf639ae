"""The decoded cache: a stream's images decoded and resized once, memory-mapped on disk.

`open_or_build(source, indices, size, directory, ...)` returns the records
`source[indices]` as a uint8 (N, size, size, 3) array (`resize` of each decoded
image, so a batch read from it equals one decoded afresh, bit for bit) and their
labels. The array is a .npy file read with `np.load(mmap_mode='r')`: later epochs
and later runs copy rows out of the page cache instead of decoding JPEGs again.

Files, in `directory` (`data.cache_dir`, by default `<workdir>/input_cache`):
`<fingerprint>.npy` (the images) and `<fingerprint>.json` (version, count, size,
fingerprint, labels). The fingerprint hashes the source (a folder: every file's path,
label, size and mtime; TFDS: the dataset's full name, split, data_dir and its files'
sizes and mtimes; in-memory arrays: their bytes), the indices, the size and the
Pillow version (the resize is Pillow's). Changed data, another subset or another size
therefore names another file, and the old one is never read again.

Crash safety: the images are written to `<name>.npy.<host>-<pid>.tmp` and renamed
into place once complete and synced; the .json is written the same way, after it.
A cache counts only when its .json matches (version, fingerprint, count, size) and
the .npy has the expected shape; anything else (a build cut short, a truncated copy)
is built again. A build first removes the temp files of dead processes of this host.

The build is eager, before training, in threads (Pillow decodes and resizes without
the GIL), with a progress line. Several processes may build the same file at once
(on storage they share): each writes its own temp file and the renames are atomic,
and the contents are equal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from tofa_jax.data import datasets

VERSION = 1
PROGRESS_EVERY_S = 10.0


def cacheable(source) -> bool:
  """Whether `source` decodes files (folders, TFDS): what `data.cache='auto'` caches.
  In-memory arrays (the bundled digits) are only resized, which is cheap."""
  return isinstance(source, datasets.FolderSource | datasets.TfdsSource)


def _stat(path: str) -> list:
  st = os.stat(path)
  return [st.st_size, st.st_mtime_ns]


def _describe(source, indices: np.ndarray) -> list:
  """What identifies `source[indices]`; raises for a source it cannot describe."""
  if isinstance(source, datasets.FolderSource):
    return ["folder", [[p, int(label), *_stat(p)] for p, label in
                       (source.files[int(i)] for i in indices)]]
  if isinstance(source, datasets.TfdsSource):
    ds = source.source
    info = ds.dataset_info
    data_dir = str(info.data_dir)
    # The prepared files' sizes and mtimes: a split prepared again is cached again.
    files = sorted(f for f in (os.listdir(data_dir) if os.path.isdir(data_dir) else ())
                   if os.path.isfile(os.path.join(data_dir, f)))
    return ["tfds", info.full_name, str(ds.split), data_dir, len(ds), source.image_key,
            source.label_key, [[f, *_stat(os.path.join(data_dir, f))] for f in files]]
  if isinstance(source, datasets.ArraySource):
    digest = hashlib.sha256(np.ascontiguousarray(source.images[indices]).tobytes())
    digest.update(np.asarray(source.labels)[indices].astype(np.int64).tobytes())
    return ["array", list(source.images.shape), digest.hexdigest()]
  raise ValueError(f"data.cache='on': a {type(source).__name__} source cannot be cached "
                   "(folders, TFDS and in-memory arrays can); set data.cache='auto' or 'off'")


def fingerprint(source, indices: np.ndarray, size: int) -> str:
  """A hash of the records `source[indices]` at `size` (see the module docstring)."""
  import PIL

  indices = np.asarray(indices, np.int64)
  what = [VERSION, PIL.__version__, int(size), _describe(source, indices),
          hashlib.sha256(indices.tobytes()).hexdigest()]
  return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:32]


class DecodedImages:
  """A built cache: `images` (memory-mapped, read-only) and `labels`.

  Pickles as its path (grain's worker processes reopen the file), never its data."""

  def __init__(self, path: str, labels: np.ndarray, size: int):
    self.path, self.labels, self.size = path, np.asarray(labels, np.int32), size
    self._images = None

  @property
  def images(self) -> np.ndarray:
    if self._images is None:
      self._images = np.load(self.path, mmap_mode="r")
    return self._images

  def __len__(self) -> int:
    return len(self.labels)

  def __getstate__(self) -> dict[str, Any]:
    return {**self.__dict__, "_images": None}


def _read(npy: str, meta_path: str, fp: str, count: int, size: int) -> DecodedImages | None:
  """The cache at `npy`, or None if it is missing, partial or not this fingerprint's."""
  try:
    with open(meta_path) as f:
      meta = json.load(f)
    if [meta.get(k) for k in ("version", "fingerprint", "count", "size")] != [
        VERSION, fp, count, size]:
      return None
    images = np.load(npy, mmap_mode="r")  # raises on a truncated file
    if images.shape != (count, size, size, 3) or images.dtype != np.uint8:
      return None
    labels = np.asarray(meta["labels"], np.int32)
    if labels.shape != (count,):
      return None
  except (OSError, ValueError, KeyError, TypeError):
    return None
  cache = DecodedImages(npy, labels, size)
  cache._images = images
  return cache


def check_directory(directory: str) -> None:
  """Creates `directory` and proves it writable; a one-line ValueError if not."""
  try:
    os.makedirs(directory, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=directory, prefix=".write_probe_")
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    raise ValueError(f"data.cache_dir={directory}: not a writable directory "
                     f"({e.strerror or e}); choose one that is, or set data.cache='off'"
                     ) from None


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _remove_dead_temps(folder: str) -> None:
  """Removes the temp files in `folder` of builds by processes of this host that are
  gone (a crash or a kill mid-build); other hosts' may still be writing theirs."""
  host = socket.gethostname()
  for f in os.listdir(folder):
    parts = f[:-len(".tmp")].split(".", 2)  # <fingerprint>.<npy|json>.<host>-<pid>.tmp
    if not f.endswith(".tmp") or len(parts) != 3:
      continue
    who, _, pid = parts[2].rpartition("-")
    if who == host and pid.isdigit() and not _alive(int(pid)):
      with contextlib.suppress(FileNotFoundError):  # another process removed it first
        os.remove(os.path.join(folder, f))


def _publish(tmp: str, final: str) -> None:
  """Syncs `tmp` and renames it to `final` (atomic on POSIX)."""
  with open(tmp, "rb+") as f:
    os.fsync(f.fileno())
  os.replace(tmp, final)


def _say(text: str) -> None:
  """A line for the user, from process 0 only (every process builds the same cache)."""
  import jax

  if jax.process_index() == 0:
    print(text, flush=True)


def open_or_build(source, indices: np.ndarray, size: int, directory: str,
                  resize: Callable[[np.ndarray, int], np.ndarray], threads: int,
                  required: bool, what: str = "images") -> DecodedImages | None:
  """The cache of `source[indices]` at `size` in `directory`, built first if needed.

  Args:
    resize: uint8 HWC image, size -> uint8 (size, size, 3); what an uncached read does.
    threads: decoding threads for a build.
    required: data.cache='on': a cache that cannot be built (no room) is an error;
      otherwise ('auto') one line says so and None is returned (read uncached).
    what: names the records in the progress line.
  """
  indices = np.asarray(indices, np.int64)
  n = len(indices)
  check_directory(directory)
  fp = fingerprint(source, indices, size)
  npy = os.path.join(directory, f"{fp}.npy")
  meta = os.path.join(directory, f"{fp}.json")
  found = _read(npy, meta, fp, n, size)
  if found is not None:
    return found
  need = n * size * size * 3 + 4096
  free = shutil.disk_usage(directory).free
  if need > free:
    text = (f"data.cache_dir={directory}: the decoded cache of {n} {what} at {size} px "
            f"needs {need / 2**30:.2f} GiB, {free / 2**30:.2f} GiB is free")
    if required:
      raise ValueError(f"{text}; free space, choose another directory, or set "
                       "data.cache='off'")
    _say(f"{text}: reading without it (data.cache='auto')")
    return None
  _remove_dead_temps(directory)
  labels = _build(source, indices, size, npy, resize, threads, what)
  tmp = f"{meta}.{socket.gethostname()}-{os.getpid()}.tmp"
  with open(tmp, "w") as f:
    json.dump({"version": VERSION, "fingerprint": fp, "count": n, "size": size,
               "labels": labels.tolist()}, f)
  _publish(tmp, meta)
  found = _read(npy, meta, fp, n, size)
  if found is None:  # another process replaced it mid-way with a broken copy
    raise ValueError(f"data.cache_dir={directory}: the decoded cache {npy} did not read "
                     "back after it was built; check the storage, or set data.cache='off'")
  return found


def _build(source, indices: np.ndarray, size: int, npy: str,
           resize: Callable[[np.ndarray, int], np.ndarray], threads: int, what: str
           ) -> np.ndarray:
  """Decodes `source[indices]` into `npy` (through a temp file); returns the labels."""
  n = len(indices)
  tmp = f"{npy}.{socket.gethostname()}-{os.getpid()}.tmp"
  start = last = time.perf_counter()
  _say(f"input cache: decoding {n} {what} at {size} px once into {npy}")
  try:
    images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                       shape=(n, size, size, 3))

    def fill(slot: int) -> int:
      record = source[int(indices[slot])]
      images[slot] = resize(np.asarray(record["image"], np.uint8), size)
      return int(record["label"])

    labels = np.zeros(n, np.int32)
    pool = ThreadPoolExecutor(max(1, threads))
    try:
      for slot, label in enumerate(pool.map(fill, range(n))):
        labels[slot] = label
        now = time.perf_counter()
        if now - last >= PROGRESS_EVERY_S and slot + 1 < n:
          last = now
          _say(f"input cache: {slot + 1}/{n} {what} ({100 * (slot + 1) // n}%, "
               f"{(slot + 1) / (now - start):.0f}/s)")
    finally:  # a bad image or an interrupt stops the build without decoding the rest
      pool.shutdown(wait=True, cancel_futures=True)
    images.flush()
    images = None  # unmaps it (the closure's cell is this variable)
    _publish(tmp, npy)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  took = time.perf_counter() - start
  _say(f"input cache: {n} {what} in {took:.1f} s ({n / max(took, 1e-9):.0f}/s)")
  return labels

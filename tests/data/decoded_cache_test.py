"""The decoded cache (`data.cache`): batches bitwise equal to decoding afresh, a stale or
partial cache built again, resumption, worker processes, and `data.cache_dir` errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers.paths import ROOT
from tofa_jax.data import datasets, decoded_cache, input_pipeline

SIZE, BATCH = 16, 4


def _photos(root, n: int = 10, seed: int = 0) -> datasets.FolderSource:
  """`n` JPEGs of assorted sizes and aspect ratios (smooth gradients plus noise) in 3
  class folders: the resize's crop and filter see portrait, landscape and square."""
  rng = np.random.default_rng(seed)
  for i in range(n):
    w, h = [(40, 28), (28, 44), (33, 33), (50, 21)][i % 4]
    ramp = np.linspace(0, 255, w)[None, :, None] * np.linspace(0.2, 1, h)[:, None, None]
    pixels = np.clip(ramp + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
    path = os.path.join(root, f"c{i % 3}", f"{i}.jpg")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)
  return datasets.FolderSource(str(root))


def _cache(directory, mode: str = "on") -> input_pipeline.CacheSpec:
  return input_pipeline.reader_options({"cache": mode, "cache_dir": str(directory)})["cache"]


def _stream(source, cache=None, pid: int = 0, count: int = 1, workers: int = 0):
  return input_pipeline.train_stream(source, np.arange(1, len(source)), BATCH, SIZE, seed=3,
                                     process_index=pid, process_count=count, threads=2,
                                     cache=cache, workers=workers)


def _take(stream, n: int) -> list[dict[str, np.ndarray]]:
  return [next(stream) for _ in range(n)]


def _assert_same(got, want) -> None:
  assert len(got) == len(want)
  for g, w in zip(got, want, strict=True):
    assert g["image"].dtype == w["image"].dtype == np.uint8
    np.testing.assert_array_equal(g["image"], w["image"])
    np.testing.assert_array_equal(g["label"], w["label"])


def _cache_files(directory) -> list[str]:
  if not os.path.isdir(directory):
    return []
  return sorted(f for f in os.listdir(directory) if not f.startswith("."))


def test_cached_batches_equal_decoded_ones_bitwise(tmp_path, capsys):
  source = _photos(tmp_path / "photos")
  plain = _take(_stream(source), 7)  # 9 records, 2 batches an epoch: over 3 epochs
  cache = _cache(tmp_path / "cache")
  _assert_same(_take(_stream(source, cache), 7), plain)
  out = capsys.readouterr().out
  assert "input cache: decoding 9 training images at 16 px once into" in out
  (npy,) = [f for f in _cache_files(tmp_path / "cache") if f.endswith(".npy")]
  assert np.load(tmp_path / "cache" / npy).shape == (9, SIZE, SIZE, 3)
  # A later run (or a process's other half of each batch) reads it without decoding.
  halves = [_stream(source, cache, pid, 2) for pid in range(2)]
  got = [{k: np.concatenate([b[k] for b in pair]) for k in ("image", "label")}
         for pair in zip(*[_take(h, 7) for h in halves], strict=True)]
  _assert_same(got, plain)
  assert "decoding" not in capsys.readouterr().out
  assert len(_cache_files(tmp_path / "cache")) == 2  # one .npy and its .json
  # Evaluation reads the same way: the shard of each process, padded.
  for pid in range(2):
    want = list(input_pipeline.eval_batches(source, SIZE, BATCH, pid, 2))
    _assert_same(list(input_pipeline.eval_batches(source, SIZE, BATCH, pid, 2,
                                                  cache=cache)), want)
    assert [int(b["mask"].sum()) for b in want] == [4, 1]


def test_auto_caches_folders_and_not_in_memory_arrays(tmp_path):
  arrays = datasets.ArraySource(np.arange(10 * 8 * 8 * 3, dtype=np.uint8).reshape(10, 8, 8, 3),
                                np.arange(10) % 3, 3)
  auto = _cache(tmp_path / "cache", "auto")
  _assert_same(_take(_stream(arrays, auto), 3), _take(_stream(arrays), 3))
  assert not _cache_files(tmp_path / "cache")
  _assert_same(_take(_stream(arrays, _cache(tmp_path / "cache", "on")), 3),
               _take(_stream(arrays), 3))
  assert len(_cache_files(tmp_path / "cache")) == 2
  _take(_stream(_photos(tmp_path / "photos"), auto), 1)
  assert len(_cache_files(tmp_path / "cache")) == 4
  no_dir = input_pipeline.reader_options({"cache": "on", "cache_dir": ""}, workdir=None)
  assert no_dir["cache"].mode == "off"  # no workdir and no data.cache_dir: nowhere to put it
  default = input_pipeline.reader_options({"cache": "on", "cache_dir": ""}, str(tmp_path))
  assert default["cache"].directory == os.path.join(str(tmp_path), "input_cache")


def test_a_stale_or_partial_cache_is_built_again(tmp_path, capsys):
  source = _photos(tmp_path / "photos")
  cache, folder = _cache(tmp_path / "cache"), tmp_path / "cache"
  _take(_stream(source, cache), 1)
  npy = folder / next(f for f in _cache_files(folder) if f.endswith(".npy"))
  meta = npy.with_suffix(".json")
  capsys.readouterr()

  def rebuilt() -> bool:
    _assert_same(_take(_stream(source, cache), 3), _take(_stream(source), 3))
    return "decoding 9 training images" in capsys.readouterr().out

  with open(npy, "r+b") as f:  # a copy cut short
    f.truncate(os.path.getsize(npy) - 100)
  assert rebuilt()
  os.remove(meta)  # a crash between the images' rename and the sidecar's
  assert rebuilt()
  record = json.loads(meta.read_text())
  meta.write_text(json.dumps({**record, "count": 8}))  # a sidecar of other records
  assert rebuilt()
  assert not rebuilt()
  # A crashed build's temp file (a dead process of this host) is cleared by the next build.
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True).stdout.strip()
  tmp = f"{npy}.{os.uname().nodename}-{dead}.tmp"
  open(tmp, "wb").close()
  # The source changes (a photo rewritten): another fingerprint, so a new cache.
  path, _ = source.files[4]
  Image.fromarray(np.full((30, 30, 3), 200, np.uint8)).save(path, quality=90)
  os.utime(path, ns=(1, 1))  # a new mtime whatever the file system's resolution
  assert rebuilt()
  assert not os.path.exists(tmp)
  assert len(_cache_files(folder)) == 4  # the old pair stays for other runs sharing it
  fresh = _take(_stream(source, cache), 7)
  _assert_same(fresh, _take(_stream(source), 7))
  assert any((b["image"] == 200).all(axis=(1, 2, 3)).any() for b in fresh)


def test_resumption_gives_the_same_batches_with_and_without_the_cache(tmp_path):
  source = _photos(tmp_path / "photos")
  cache = _cache(tmp_path / "cache")
  whole = _stream(source, cache)
  head = _take(whole, 3)
  state = whole.get_state()
  assert state == {"next_index": 3}  # grain's format: older checkpoints resume
  want = _take(whole, 4)
  for resumed_cache in (cache, None):
    resumed = _stream(source, resumed_cache)
    resumed.set_state(state)
    _assert_same(_take(resumed, 4), want)
  _assert_same(head, _take(_stream(source), 3))


def test_worker_processes_give_the_same_batches_and_resume(tmp_path):
  source = _photos(tmp_path / "photos")
  cache = _cache(tmp_path / "cache")
  want = _take(_stream(source), 7)
  stream = _stream(source, cache, workers=2)
  stream.set_state({"next_index": 3})  # a resume: the workers start at batch 3
  try:  # 2 workers take alternate batches; the stream interleaves them back in order
    _assert_same(_take(stream, 4), want[3:])
    assert stream.get_state() == {"next_index": 7}
  finally:
    stream.close()


def test_a_bad_cache_dir_is_one_line_naming_the_key(tmp_path):
  source = _photos(tmp_path / "photos")
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  bad = str(blocker / "cache")
  with pytest.raises(ValueError) as e:
    _stream(source, _cache(bad))
  assert str(e.value) == (f"data.cache_dir={bad}: not a writable directory (Not a directory); "
                          "choose one that is, or set data.cache='off'")
  with pytest.raises(ValueError, match=r"^data.cache_dir=gs://b/c: the decoded cache is "
                     r"memory-mapped and needs a local or mounted directory$"):
    input_pipeline.reader_options({"cache": "on", "cache_dir": "gs://b/c"})
  with pytest.raises(ValueError, match=r"^data.cache='yes'; choose one of \['auto', 'on', "
                     r"'off'\]$"):
    input_pipeline.reader_options({"cache": "yes"})
  # data.cache='off' never touches the directory.
  _take(_stream(source, _cache(bad, "off")), 1)


def test_a_cache_without_room_stops_when_on_and_is_skipped_when_auto(tmp_path, monkeypatch,
                                                                     capsys):
  source = _photos(tmp_path / "photos")
  full = type("Usage", (), {"free": 1000})
  monkeypatch.setattr(decoded_cache.shutil, "disk_usage", lambda _: full)
  folder = tmp_path / "cache"
  with pytest.raises(ValueError, match=rf"^data.cache_dir={folder}: the decoded cache of 9 "
                     r"training images at 16 px needs 0.00 GiB, 0.00 GiB is free; free space"):
    _stream(source, _cache(folder, "on"))
  _assert_same(_take(_stream(source, _cache(folder, "auto")), 2), _take(_stream(source), 2))
  assert "reading without it (data.cache='auto')" in capsys.readouterr().out
  assert not _cache_files(folder)


def test_the_benchmark_prints_one_line_per_epoch():
  out = subprocess.run(
      [sys.executable, "benchmarks/input_pipeline.py", "--jpegs=16", "--size=64x48",
       "--threads=2", "--epochs=2", "--image_size=24", "--batch=8"],
      cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
  epochs = [x for x in out if x.startswith("epoch=")]
  assert [x.split()[0] for x in epochs] == ["epoch=1", "epoch=2"]
  assert all(x.split()[1].startswith("images_per_s=") and x.split()[2].startswith("per_core=")
             for x in epochs)

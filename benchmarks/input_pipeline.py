"""Images per second of the training input stream over photo JPEGs, epoch by epoch.

  python benchmarks/input_pipeline.py [--jpegs=256] [--size=1000x700] [--threads=2] \
      [--epochs=3] [--image_size=320] [--batch=32] [--cache=auto] [--workers=0]

Writes `--jpegs` JPEGs of `--size` (sklearn's two sample photos, each JPEG a different
crop of one resized to that size, quality 90) as a folder dataset (4 classes) in a temp
directory, then reads them through `input_pipeline.train_stream` as the training loop
does: the stream is opened with the loop's reader options (`data.threads`, `data.cache`
with its cache in the temp directory, `data.workers`), and every batch is put on the
device as a global array and the iterator's state is taken, as the loop does for its
checkpoints. Augmentation is left out: it runs on the device, not the host. Epoch 1
includes opening the stream, which builds the decoded cache when it is on. Prints one
line per epoch:

  epoch=<k> images_per_s=<x> per_core=<y>

`per_core` is images per second of CPU time of this process and its children (user +
system): how many images one busy core serves, so `images_per_s / per_core` is the number
of cores the input kept busy.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, ".")

_JPEGS = flags.DEFINE_integer("jpegs", 256, "number of JPEGs to write")
_SIZE = flags.DEFINE_string("size", "1000x700", "JPEG width x height")
_THREADS = flags.DEFINE_integer("threads", 2, "reader threads (data.threads)")
_EPOCHS = flags.DEFINE_integer("epochs", 3, "epochs to read")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 320, "loading size (data.image_size)")
_BATCH = flags.DEFINE_integer("batch", 32, "batch size (train.batch_size)")
_CACHE = flags.DEFINE_enum("cache", "auto", ["auto", "on", "off"], "data.cache")
_WORKERS = flags.DEFINE_integer("workers", 0, "grain worker processes (data.workers)")
CLASSES = 4


def write_jpegs(root: str, n: int, width: int, height: int) -> None:
  """`n` JPEGs of width x height in CLASSES class folders: crops of the sample photos
  (a different window each), resized, quality 90."""
  from PIL import Image
  from sklearn.datasets import load_sample_images

  photos = [Image.fromarray(p) for p in load_sample_images().images]
  rng = np.random.default_rng(0)
  for c in range(CLASSES):
    os.makedirs(os.path.join(root, f"class{c}"), exist_ok=True)
  for i in range(n):
    photo = photos[i % len(photos)]
    w, h = photo.size
    cw, ch = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = photo.crop((x, y, x + cw, y + ch)).resize((width, height), Image.BICUBIC)
    img.save(os.path.join(root, f"class{i % CLASSES}", f"{i:05d}.jpg"), quality=90)


def cpu_seconds() -> float:
  """User + system CPU time of this process and its live and finished children."""
  import psutil

  me = psutil.Process()
  total = sum(me.cpu_times()[:4])  # user, system, children_user, children_system
  for child in me.children(recursive=True):
    with contextlib.suppress(psutil.NoSuchProcess):  # it ended since the listing
      total += sum(child.cpu_times()[:2])
  return total


def main(argv) -> None:
  del argv
  import jax
  from jax.sharding import NamedSharding, PartitionSpec

  from tofa_jax.data import datasets, input_pipeline
  from tofa_jax.runtime import mesh as mesh_lib

  width, height = (int(v) for v in _SIZE.value.lower().split("x"))
  batch = _BATCH.value
  if _JPEGS.value < batch:
    raise ValueError(f"--jpegs={_JPEGS.value} is below --batch={batch}; raise it")
  steps = _JPEGS.value // batch  # batches in an epoch
  sharding = NamedSharding(mesh_lib.make_mesh(jax.devices()[:1]), PartitionSpec("data"))
  with tempfile.TemporaryDirectory() as tmp:
    root = os.path.join(tmp, "photos")
    write_jpegs(root, _JPEGS.value, width, height)
    source = datasets.FolderSource(root)
    data_cfg = {"threads": _THREADS.value, "cache": _CACHE.value, "cache_dir": "",
                "workers": _WORKERS.value}
    print(f"jpegs={_JPEGS.value} size={width}x{height} image_size={_IMAGE_SIZE.value} "
          f"batch={batch} threads={_THREADS.value} cache={_CACHE.value} "
          f"workers={_WORKERS.value} cores={os.cpu_count()}", flush=True)
    t, cpu = time.perf_counter(), cpu_seconds()
    stream = input_pipeline.train_stream(
        source, np.arange(len(source)), batch, _IMAGE_SIZE.value, seed=0,
        **input_pipeline.reader_options(data_cfg, workdir=tmp))
    for epoch in range(1, _EPOCHS.value + 1):
      for _ in range(steps):
        b = next(stream)
        images = mesh_lib.global_array(sharding, b["image"])
        mesh_lib.global_array(sharding, b["label"])
        stream.get_state()
      images.block_until_ready()
      now, now_cpu = time.perf_counter(), cpu_seconds()
      n = steps * batch
      print(f"epoch={epoch} images_per_s={n / (now - t):.1f} "
            f"per_core={n / max(now_cpu - cpu, 1e-9):.1f}", flush=True)
      t, cpu = now, now_cpu
    if hasattr(stream, "close"):
      stream.close()


if __name__ == "__main__":
  app.run(main)

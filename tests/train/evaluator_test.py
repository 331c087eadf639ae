"""The trainer's evaluation reads the device once per call, after every batch, and its
top-1 equals a NumPy count over the same resized test images."""

from __future__ import annotations

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from helpers.configs import tiny_config
from tofa_jax.data import datasets, input_pipeline
from tofa_jax.data.loading import Data
from tofa_jax.runtime import mesh as mesh_lib
from tofa_jax.space import sampling
from tofa_jax.space.search_space import get_space
from tofa_jax.train import evaluator

CLASSES = 10


class _ChannelModel:
  """Logits = per-channel image means times a fixed matrix: cheap to compile, and a
  different answer at each resolution."""

  def apply(self, variables, images, arrays, train, resolution):
    del arrays, train, resolution
    return jnp.mean(images, axis=(1, 2)) @ variables["params"]["w"]


class _KeepBN:
  """Recalibration left out: the fake model has no BN. Counts the images it is given."""

  images: list[int] = []

  def __init__(self, model):
    del model

  def __call__(self, variables, arrays, batches, resolution):
    _KeepBN.images.append(sum(b.shape[0] for b in batches))
    return variables


def test_evaluation_reads_the_device_once_and_counts_like_numpy(monkeypatch):
  from jax._src import array as jax_array

  monkeypatch.setattr(evaluator, "BNCalibrator", _KeepBN)
  space = dataclasses.replace(get_space("tiny"), resolutions=(12, 20))
  train, test = datasets.bundled("digits", "train"), datasets.bundled("digits", "test")
  data = Data(train, test, train, np.arange(64), np.arange(0), CLASSES, np.arange(0))
  config = tiny_config(**{"evals.batch_size": 40, "data.threads": 2,  # 359: 9 batches
                          "evals.bn_images": 50})
  sharding = NamedSharding(mesh_lib.make_mesh(), PartitionSpec("data"))
  plain_view = jax.jit(lambda x: x.astype(jnp.float32) / 255.0, out_shardings=sharding)
  w = np.random.default_rng(0).normal(size=(3, CLASSES)).astype(np.float32)
  ev = evaluator.Evaluator(config, _ChannelModel(), space, data, plain_view, sharding)
  events, value = [], jax_array.ArrayImpl._value
  hits = ev.hits

  def counted_hits(*args, **kwargs):
    events.append("batch")
    return hits(*args, **kwargs)

  def counted_read(self):
    events.append("read")
    return value.fget(self)

  monkeypatch.setattr(ev, "hits", counted_hits)
  monkeypatch.setattr(jax_array.ArrayImpl, "_value", property(counted_read))
  got = ev(types.SimpleNamespace(params={"w": w}, batch_stats={}))  # a TrainState's fields
  monkeypatch.undo()
  # Every batch of both subnets is dispatched before the one read of their totals.
  assert events == ["batch"] * 18 + ["read"] * 2
  # Every test image counts, the 39 of the padded last batch too. BN: 50 images at 40 a
  # batch would be 2 whole batches (80), but the 64 training images hold one (40).
  assert ev.counted == {"max": 359, "min": 359} and len(test) == 359
  assert len(ev.calib_idx) == 40 and _KeepBN.images[-2:] == [40, 40]
  for name in ("max", "min"):
    res = sampling.sample_named(space, name).resolution
    images = np.stack([input_pipeline.resize_square(test[i]["image"], res)
                       for i in range(len(test))]).astype(np.float32) / 255.0
    top1 = np.mean(np.argmax(images.mean(axis=(1, 2)) @ w, -1) == test.labels)
    assert got[f"top1_{name}"] == top1, name

"""BatchNorm recalibration of one subnet (OFA/AttentiveNAS `set_running_statistics`).

The supernet's running statistics are a blend over every sampled subnet and do
not hold for any single one. Before evaluating or exporting a subnet, its BN
statistics are recomputed as the cumulative average of per-batch mean and
variance over N batches of training images, the subnet running in train mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp

from tofa_jax.model.supernet import Supernet

Array = jax.Array


def calibration_model(model: Supernet) -> Supernet:
  """The supernet as BN recalibration runs it.

  Momentum 0 makes the "running" update return the batch statistics
  themselves; inactive channels and layers keep their values. No dropout or
  drop-connect, which would perturb the statistics downstream.
  """
  return model.clone(bn_momentum=0.0, dropout_rate=0.0, drop_connect_rate=0.0)


def _accumulate(acc: dict, batch_stats: dict, count: Array) -> dict:
  # Cumulative average: acc_k = acc_{k-1} + (batch_k - acc_{k-1}) / k.
  return jax.tree.map(lambda a, b: a + (b - a) / count, acc, batch_stats)


def recalibrate(calib_model: Supernet, variables: dict, arch: dict[str, Array], batches: Array,
                resolution: int, preprocess: Callable[[Array], Array] = lambda x: x) -> dict:
  """Traceable recalibration over stacked `batches` (n, B, H, W, C) with lax.scan.

  `calib_model` comes from `calibration_model`; `preprocess` maps a stored
  batch to the network's input (e.g. uint8 -> normalised float).
  """
  def body(carry, images):
    acc, count = carry
    _, new = calib_model.apply({"params": variables["params"], "batch_stats": acc},
                               preprocess(images), arch, train=True, resolution=resolution,
                               mutable=["batch_stats"])
    return (_accumulate(acc, new["batch_stats"], count), count + 1.0), None

  (acc, _), _ = jax.lax.scan(body, (variables["batch_stats"], jnp.float32(1.0)), batches)
  return {**variables, "batch_stats": acc}


class BNCalibrator:
  """Recomputes a subnet's BN statistics; one compiled program per resolution."""

  def __init__(self, model: Supernet):
    self._model = calibration_model(model)
    self.step = jax.jit(self._step, static_argnames=("resolution",), donate_argnums=(1,))

  def _step(self, variables: dict, acc: dict, count: Array, images: Array,
            arch: dict[str, Array], resolution: int) -> dict:
    _, new = self._model.apply({"params": variables["params"], "batch_stats": acc}, images,
                               arch, train=True, resolution=resolution,
                               mutable=["batch_stats"])
    return _accumulate(acc, new["batch_stats"], count)

  def __call__(self, variables: dict, arch: dict[str, Array], batches: Iterable[Array],
               resolution: int) -> dict:
    """Returns `variables` with `batch_stats` recalibrated for `arch`.

    Args:
      variables: supernet {'params', 'batch_stats'}.
      arch: arrays from `arch.to_arrays`.
      batches: iterable of NHWC image batches (training images).
      resolution: the subnet's input resolution.
    """
    acc = jax.tree.map(jnp.copy, variables["batch_stats"])
    n = 0
    for n, images in enumerate(batches, start=1):
      acc = self.step(variables, acc, jnp.float32(n), images, arch, resolution=resolution)
    if n == 0:
      raise ValueError("BN recalibration got no batches; set evals.bn_images >= 1")
    return {**variables, "batch_stats": acc}

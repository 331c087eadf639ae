"""The trainer's periodic evaluation: top-1 of named subnets after BN recalibration."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from tofa_jax.data import input_pipeline
from tofa_jax.data.loading import Data
from tofa_jax.model.bn_calibration import BNCalibrator
from tofa_jax.runtime.mesh import global_array, per_process
from tofa_jax.space import arch as arch_lib
from tofa_jax.space import sampling


class Evaluator:
  """Top-1 of named subnets (`evals.subnets`, default max and min) on the test split,
  each after BN recalibration on `evals.bn_batches` labelled training batches.

  Built once per run: the calibration batches, the recalibration program and the
  jitted counting forward are reused by every evaluation.
  """

  def __init__(self, config, model, space, data: Data, plain_view, batch_sharding):
    self.config, self.space, self.data = config, space, data
    self.res, self.bs = config.data.image_size, per_process(config.evals.batch_size)
    self.plain_view, self.sharding = plain_view, batch_sharding
    self.calibrator = BNCalibrator(model)
    calib_idx = data.labelled_idx[:config.evals.batch_size * config.evals.bn_batches]
    batches = list(input_pipeline.eval_batches(
        input_pipeline.Records(data.train, calib_idx), self.res, self.bs,
        jax.process_index(), jax.process_count()))
    # Full batches only (padding would skew BN); the count is the same on every process.
    n_full = max(1, len(calib_idx) // jax.process_count() // self.bs)
    self.calib = [plain_view(global_array(batch_sharding, b["image"])) for b in batches[:n_full]]

    @jax.jit
    def hits(variables, images, labels, mask, arrays):
      logits = model.apply(variables, images, arrays, train=False, resolution=self.res)
      return jnp.sum((jnp.argmax(logits, -1) == labels) * mask), jnp.sum(mask)

    self.hits = hits

  def __call__(self, state) -> dict[str, float]:
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    out = {}
    for name in self.config.evals.subnets:
      arch = dataclasses.replace(sampling.sample_named(self.space, name), resolution=self.res)
      arrays = arch_lib.to_arrays(self.space, arch)
      calibrated = self.calibrator(variables, arrays, self.calib, self.res)
      correct = count = 0.0
      for b in input_pipeline.eval_batches(self.data.test, self.res, self.bs,
                                           jax.process_index(), jax.process_count()):
        put = functools.partial(global_array, self.sharding)
        c, n = self.hits(calibrated, self.plain_view(put(b["image"])), put(b["label"]),
                         put(b["mask"]), arrays)
        correct, count = correct + float(c), count + float(n)
      out[f"top1_{name}"] = correct / max(count, 1.0)
    return out

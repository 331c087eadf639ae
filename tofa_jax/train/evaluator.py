"""The trainer's periodic evaluation: top-1 of named subnets after BN recalibration.

Test batches come from `input_pipeline.eval_batches`, the training streams' batch
reader: read in `data.threads` threads and, where `data.cache` caches, decoded once
per resolution into the decoded cache. Hits are summed on the device and read once
per evaluation, so the host never waits for a batch to finish."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from tofa_jax.data import calibration, input_pipeline
from tofa_jax.data.loading import Data
from tofa_jax.model.bn_calibration import BNCalibrator
from tofa_jax.runtime.mesh import global_array, per_process
from tofa_jax.space import arch as arch_lib
from tofa_jax.space import sampling

DEFAULT_SUBNETS = ("max", "min")  # configs/default.py's evals.subnets


def subnet_names(config) -> tuple[str, ...]:
  """The subnets a run evaluates: `evals.subnets`; with `train.mode='single'`, the one
  arch it trains (`train.arch`), unless `evals.subnets=()` turns evaluation off. Any
  other value conflicts with single mode (config/consistency.py refuses it)."""
  names = tuple(config.evals.subnets)
  if config.train.get("mode", "supernet") != "single" or not names:
    return names
  return (config.train.get("arch", "max"),)


class Evaluator:
  """Top-1 of named subnets (`subnet_names`: default max and min) on the test split,
  each at its own resolution (the max at the largest, the min at the smallest), after
  BN recalibration on `evals.bn_images` training images (`data/calibration.py`: the
  palette's rule and images). Every test image counts: a padded last batch is masked.

  Built once per run: per resolution, the calibration batches, the recalibration
  program and the jitted counting forward are made once and reused by every
  evaluation.
  """

  def __init__(self, config, model, space, data: Data, plain_view, batch_sharding,
               workdir: str | None = None):
    self.config, self.space, self.data = config, space, data
    # The test split's cache lives where the training streams' does; without a workdir
    # or data.cache_dir, evaluation decodes every time.
    reader = input_pipeline.reader_options(config.data, workdir)
    self.threads, self.cache = reader["threads"], reader["cache"]
    self.bs = per_process(config.evals.batch_size)
    self.plain_view, self.sharding = plain_view, batch_sharding
    self.calibrator = BNCalibrator(model)
    # Drawn only when the run evaluates: a run with evals.subnets=() needs no whole batch.
    self.calib_idx = (calibration.of_config(config, data) if subnet_names(config)
                      else np.arange(0))
    self._calib: dict[int, list] = {}
    self.counted: dict[str, int] = {}  # test images scored per subnet, at the last call

    # Totals in and out replicated, so the first call (zeros) and the later ones (its
    # outputs) share one compiled program per resolution.
    self.replicated = NamedSharding(batch_sharding.mesh, PartitionSpec())

    @functools.partial(jax.jit, static_argnames=("resolution",),
                       out_shardings=self.replicated)
    def hits(totals, variables, images, labels, mask, arrays, resolution):
      """totals + (correct, counted) of this batch: a running sum kept on the device."""
      logits = model.apply(variables, images, arrays, train=False, resolution=resolution)
      return totals + jnp.stack([jnp.sum((jnp.argmax(logits, -1) == labels) * mask),
                                 jnp.sum(mask)])

    self.hits = hits

  def calibration_batches(self, resolution: int) -> Iterator[jax.Array]:
    """The recalibration images at `resolution`, normalised batch by batch, in whole
    batches (padding would skew BN; `calibration.indices` draws whole global batches,
    so every process reads the same number). Kept on the devices as uint8 between
    evaluations: a quarter of the memory of float32 (1,000 images at 224 px: 150 MB)."""
    if resolution not in self._calib:
      self._calib[resolution] = [global_array(self.sharding, b["image"])
                                 for b in input_pipeline.eval_batches(
          input_pipeline.Records(self.data.train, self.calib_idx), resolution, self.bs,
          jax.process_index(), jax.process_count(), threads=self.threads)]
    return (self.plain_view(images) for images in self._calib[resolution])

  def __call__(self, state) -> dict[str, float]:
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    totals = {}
    put = functools.partial(global_array, self.sharding)
    for name in subnet_names(self.config):
      arch = sampling.sample_named(self.space, name)
      res = arch.resolution
      arrays = arch_lib.to_arrays(self.space, arch)
      calibrated = self.calibrator(variables, arrays, self.calibration_batches(res), res)
      # correct, counted: exact in f32 below 2**24
      total = global_array(self.replicated, np.zeros(2, np.float32))
      for b in input_pipeline.eval_batches(self.data.test, res, self.bs,
                                           jax.process_index(), jax.process_count(),
                                           threads=self.threads, cache=self.cache):
        total = self.hits(total, calibrated, self.plain_view(put(b["image"])),
                          put(b["label"]), put(b["mask"]), arrays, resolution=res)
      totals[name] = total
    read = jax.device_get(totals)  # the one wait of an evaluation
    self.counted = {name: int(t[1]) for name, t in read.items()}
    return {f"top1_{name}": float(t[0]) / max(float(t[1]), 1.0) for name, t in read.items()}

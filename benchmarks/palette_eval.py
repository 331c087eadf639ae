"""Palette evaluation speed: seconds per subnet, fused vs step-by-step, and Algorithm 2.

The fused evaluator (`subnet_eval.SubnetEvaluator`) recalibrates BN and predicts
a whole split in one jitted program per resolution; the step-by-step baseline is
what the trainer's periodic eval does (`BNCalibrator`, one dispatch per batch,
then one jitted forward per batch). Both evaluate the same random subnets on
the same synthetic images. Algorithm 2 is timed on a synthetic Omega.

  python benchmarks/palette_eval.py --space=lite0 --resolution=64 --images=512
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import numpy as np

from tofa_jax.data import augment, datasets, input_pipeline
from tofa_jax.model import supernet
from tofa_jax.model.bn_calibration import BNCalibrator
from tofa_jax.search import selection
from tofa_jax.search.subnet_eval import SubnetEvaluator
from tofa_jax.space import arch as arch_lib
from tofa_jax.space import flops, sampling, search_space

MEAN, STD = (0.5,) * 3, (0.25,) * 3


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--space", default="lite0")
  p.add_argument("--resolution", type=int, default=64)
  p.add_argument("--images", type=int, default=512)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--bn_batches", type=int, default=3)
  p.add_argument("--subnets", type=int, default=6)
  p.add_argument("--omega", type=int, default=20000)
  a = p.parse_args()

  space = dataclasses.replace(search_space.get_space(a.space), resolutions=(a.resolution,))
  model = supernet.build(space, num_classes=10)
  variables = supernet.init_variables(model, seed=0, resolution=a.resolution)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (a.images, a.resolution, a.resolution, 3), dtype=np.uint8)
  source = datasets.ArraySource(images, rng.integers(0, 10, a.images), 10)
  calib_idx = np.arange(a.batch * a.bn_batches)
  split_idx = np.arange(a.images)
  archs = [sampling.sample_arch(space, 0, i) for i in range(a.subnets + 1)]
  print(f"space {a.space} at {a.resolution} px, {a.images} images, batch {a.batch}, "
        f"{a.bn_batches} BN batches, backend {jax.default_backend()}")

  fused = SubnetEvaluator(model, variables, MEAN, STD, (source, calib_idx),
                          (source, split_idx), a.batch)
  t0 = time.perf_counter()
  fused.predictions(archs[0])
  print(f"fused: compile + first subnet {time.perf_counter() - t0:.1f} s")
  t0 = time.perf_counter()
  for arch in archs[1:]:
    fused.predictions(arch)
  per_fused = (time.perf_counter() - t0) / a.subnets
  print(f"fused: {per_fused:.3f} s/subnet ({a.images / per_fused:.0f} img/s incl. "
        "recalibration)")

  calibrator = BNCalibrator(model)
  forward = jax.jit(model.apply, static_argnames=("train", "resolution"))
  prep = lambda b: augment.normalize(augment.to_float(b["image"]), MEAN, STD)  # noqa: E731
  calib = [prep(b) for b in input_pipeline.eval_batches(
      input_pipeline.Records(source, calib_idx), a.resolution, a.batch)]
  batches = [prep(b) for b in input_pipeline.eval_batches(
      input_pipeline.Records(source, split_idx), a.resolution, a.batch)]

  def step_by_step(arch):
    arrays = arch_lib.to_arrays(space, arch)
    v = calibrator(variables, arrays, calib, a.resolution)
    return [np.asarray(forward(v, x, arrays, train=False, resolution=a.resolution).argmax(-1))
            for x in batches]

  t0 = time.perf_counter()
  step_by_step(archs[0])
  print(f"step-by-step: compile + first subnet {time.perf_counter() - t0:.1f} s")
  t0 = time.perf_counter()
  for arch in archs[1:]:
    step_by_step(arch)
  per_step = (time.perf_counter() - t0) / a.subnets
  print(f"step-by-step: {per_step:.3f} s/subnet; fused is {per_step / per_fused:.2f}x")

  omega = [(sampling.sample_arch(space, 1, i), {"last": i, "score": i}) for i in range(a.omega)]
  cost = {arch: flops.count(space, arch).mflops for arch, _ in omega}
  lo, hi = min(cost.values()), max(cost.values())
  t0 = time.perf_counter()
  selection.select(omega, cost.__getitem__, selection.budgets((), 10, lo, hi), "last")
  print(f"Algorithm 2: {len(omega)} subnets, 10 budgets: {time.perf_counter() - t0:.3f} s "
        "(MFLOPs precomputed)")


if __name__ == "__main__":
  main()

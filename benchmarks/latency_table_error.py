"""Latency table error: the table's predictions against whole subnets measured in the runtime.

Builds a table for --space at --resolutions (or loads --table), then measures
--subnets random subnets whole with `RuntimeLatencyMeter`, in the same runtime, thread
count and timing rule, and prints per subnet the prediction (one call overhead plus the
layers' excess over it; and the plain sum of entries) against the measurement, then
Spearman's rank correlation and the mean relative error of both. Target: rank
correlation >= 0.9.

  python benchmarks/latency_table_error.py --space=ofa_mbv3 --resolutions=160,224 \
      --runtime=onnxruntime --threads=1 [--save=lut.json | --table=lut.json]

Samples ignore the space's MFLOPs window, so that low resolutions draw from every subnet.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tofa_jax.deploy import latency_table  # noqa: E402
from tofa_jax.deploy.runtime_latency import RuntimeLatencyMeter  # noqa: E402
from tofa_jax.model import supernet  # noqa: E402
from tofa_jax.space import flops, sampling, search_space  # noqa: E402


def _figures(name: str, pred: np.ndarray, meas: np.ndarray) -> None:
  rho = stats.spearmanr(pred, meas).statistic
  rel = np.abs(pred - meas) / meas
  print(f"{name}: spearman={rho:.3f} mean_rel_err={rel.mean():.3f} "
        f"max_rel_err={rel.max():.3f} mean(pred/meas)={np.mean(pred / meas):.3f}")


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--space", default="ofa_mbv3")
  p.add_argument("--resolutions", default="160,224", help="comma-separated; '' = the space's")
  p.add_argument("--runtime", default="onnxruntime")
  p.add_argument("--threads", type=int, default=1)
  p.add_argument("--warmup", type=int, default=5)
  p.add_argument("--repeats", type=int, default=30)
  p.add_argument("--num_classes", type=int, default=1000)
  p.add_argument("--subnets", type=int, default=20)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--table", default="", help="load this table instead of building one")
  p.add_argument("--save", default="", help="write the built table here")
  a = p.parse_args()

  space = search_space.get_space(a.space)
  if a.resolutions:
    space = dataclasses.replace(space, resolutions=tuple(int(r) for r in
                                                         a.resolutions.split(",")))
  space = dataclasses.replace(space, mflops_window=None)
  t0 = time.perf_counter()
  if a.table:
    table = latency_table.load(a.table, space, a.num_classes)
  else:
    built = latency_table.build(space, a.runtime, a.threads, a.num_classes, a.warmup,
                                a.repeats)
    if a.save:
      latency_table.save(built, a.save)
    table = latency_table.LatencyTable(built, space, a.save or "<built>")
  build_s = time.perf_counter() - t0
  info = table.describe()
  print(f"table: {info['entries']} entries, {info['runtime']}, threads {info['threads']}, "
        f"overhead {info['overhead_ms']:.4f} ms, {build_s:.0f} s")

  model = supernet.build(space, a.num_classes)
  variables = supernet.init_variables(model, seed=0, resolution=min(space.resolutions))
  meter = RuntimeLatencyMeter(space, variables, a.num_classes, table.table["runtime"],
                              a.threads, a.repeats, a.warmup)
  rows = []
  t0 = time.perf_counter()
  print("subnet resolution mflops layers predicted_ms sum_ms measured_ms rel_err")
  for i in range(a.subnets):
    arch = sampling.sample_arch(space, a.seed, i)
    parts = table.breakdown(arch)
    pred, raw = table.predict(arch), sum(ms for _, ms in parts)
    meas = meter(arch, 1)
    rows.append((pred, raw, meas))
    print(f"{i:6d} {arch.resolution:10d} {flops.count(space, arch, a.num_classes).mflops:6.0f} "
          f"{len(parts):6d} {pred:12.3f} {raw:6.3f} {meas:11.3f} {(pred - meas) / meas:+7.3f}")
  measure_s = time.perf_counter() - t0
  pred, raw, meas = (np.asarray(c) for c in zip(*rows, strict=True))
  _figures("overhead-corrected", pred, meas)
  _figures("plain sum", raw, meas)
  print(f"wall: table {build_s:.0f} s, {a.subnets} subnets {measure_s:.0f} s")


if __name__ == "__main__":
  main()

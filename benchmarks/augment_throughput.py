"""On-device augmentation throughput: images/s of AutoAugment and of the whole strong view.

  python benchmarks/augment_throughput.py [--batch=32] [--sizes=320,64] [--repeats=10]

The aircraft config's unlabelled batch is 32 images at its loading size, 320 px; each
step augments it once strongly (weak + AutoAugment, `augment.strong`). For each size
this prints, on the default backend, one line per program:

  program=<autoaugment|strong|weak> size=<px> batch=<n> images_per_s=<x>
      cpu_ms_per_image=<ms> gflop=<x> gb_accessed=<x> compile_s=<s>

`autoaugment` is the policy alone on float images in [0, 1] (vmapped
`autoaugment.autoaugment_one`), `strong` the full strong view from uint8, `weak` the weak
view for comparison. Random uint8 images; each repeat draws a new key.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from tofa_jax.data import augment, autoaugment


def _programs(cfg: augment.AugmentConfig) -> dict:
  def policy(key, images):
    x = augment.to_float(images)
    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(autoaugment.autoaugment_one)(keys, x)

  return {"autoaugment": jax.jit(policy),
          "strong": jax.jit(lambda k, x: augment.strong(k, x, cfg)),
          "weak": jax.jit(lambda k, x: augment.weak(k, x, cfg))}


def measure(fn, images: jax.Array, repeats: int) -> dict[str, float]:
  """Compile + first call seconds; images/s and CPU ms per image over `repeats` calls
  with fresh keys (CPU time counts every thread of this process: on a shared host it
  moves less than wall time); XLA's cost analysis of the program (GFLOP, GB accessed)."""
  start = time.perf_counter()
  cost = fn.lower(jax.random.PRNGKey(0), images).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  jax.block_until_ready(fn(jax.random.PRNGKey(0), images))
  compile_s = time.perf_counter() - start
  start, cpu = time.perf_counter(), time.process_time()
  for i in range(repeats):
    out = fn(jax.random.PRNGKey(i + 1), images)
  jax.block_until_ready(out)
  n = repeats * images.shape[0]
  return {"images_per_s": n / (time.perf_counter() - start),
          "cpu_ms_per_image": 1000 * (time.process_time() - cpu) / n,
          "gflop": cost.get("flops", float("nan")) / 1e9,
          "gb_accessed": cost.get("bytes accessed", float("nan")) / 1e9,
          "compile_s": compile_s}


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--sizes", default="320,64", help="comma-separated image sides (px)")
  p.add_argument("--repeats", type=int, default=10)
  p.add_argument("--programs", default="autoaugment,strong,weak")
  a = p.parse_args()
  programs = _programs(augment.AugmentConfig())
  names = a.programs.split(",")
  unknown = set(names) - set(programs)
  if unknown:
    raise SystemExit(f"--programs: unknown {sorted(unknown)}; allowed: {list(programs)}")
  print(f"backend={jax.default_backend()} devices={jax.devices()}", flush=True)
  for size in (int(s) for s in a.sizes.split(",")):
    rng = np.random.default_rng(0)
    images = jax.device_put(rng.integers(0, 256, (a.batch, size, size, 3), dtype=np.uint8))
    for name in names:
      figures = " ".join(f"{k}={v:.4g}" for k, v in measure(programs[name], images,
                                                              a.repeats).items())
      print(f"program={name} size={size} batch={a.batch} {figures}", flush=True)


if __name__ == "__main__":
  main()

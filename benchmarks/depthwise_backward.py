"""One depthwise layer's weight gradient, three ways, timed on this machine.

  python benchmarks/depthwise_backward.py [--batch=32] [--size=64] [--channels=96]
                                          [--kernel=7] [--stride=1] [--repeats=5]

`model.depthwise_impl=shift` (the CPU's `auto`) computes the weight gradient in
`elastic_ops._shift_dw_bwd`: per kernel row, one batched matmul over (n, h) of the
channel-major input row and cotangent, then the k diagonals of its (w_in, w_out)
result, which multiplies every input column with every output column (w_in/k times
the needed work) to run as a matmul. This prints, for one layer of the given shape,
the milliseconds per call (median of `--repeats`) of:

- `shift`: that weight gradient, as the train step runs it;
- `lax`: XLA's own gradient of its grouped convolution (`depthwise_impl=lax`);
- `reduce`: the needed work only, each of the k*k taps as an elementwise product of
  the tap's slice of the input with the cotangent, summed over (n, h, w);

and each one's largest difference from `shift`, relative to its largest value.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from tofa_jax.model import elastic_ops
from tofa_jax.space import plan as plan_lib


def _ms(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return statistics.median(times) * 1e3


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--size", type=int, default=64, help="the input's height and width")
  parser.add_argument("--channels", type=int, default=96)
  parser.add_argument("--kernel", type=int, default=7)
  parser.add_argument("--stride", type=int, default=1)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  n, s, c, k, stride = args.batch, args.size, args.channels, args.kernel, args.stride
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(n, s, s, c)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k, k, 1, c)), jnp.float32)
  pads = plan_lib.conv_pads(s, k, stride, "same")
  out = jax.eval_shape(lambda: elastic_ops.depthwise_conv(x, w, stride, "same"))
  g = jnp.asarray(rng.normal(size=out.shape), jnp.float32)
  ho, wo = g.shape[1], g.shape[2]

  def grad_of(impl):
    def f(x, w, g):
      _, vjp = jax.vjp(lambda w: elastic_ops.depthwise_conv(x, w, stride, "same", impl), w)
      return vjp(g)[0]
    return jax.jit(f)

  def reduce(x, w, g):
    xp = jnp.pad(x, ((0, 0), pads, pads, (0, 0)))
    taps = [[jnp.sum(elastic_ops.tap(xp, i, j, stride, ho, wo) * g, axis=(0, 1, 2))
             for j in range(k)] for i in range(k)]
    return jnp.asarray(taps)[:, :, None, :]

  ways = {"shift": grad_of("shift"), "lax": grad_of("lax"), "reduce": jax.jit(reduce)}
  ref = ways["shift"](x, w, g)
  scale = float(jnp.max(jnp.abs(ref)))
  print(f"x {x.shape}, kernel {k}, stride {stride}, backend {jax.default_backend()}")
  for name, fn in ways.items():
    diff = float(jnp.max(jnp.abs(fn(x, w, g) - ref))) / scale
    print(f"{name:>6}: {_ms(fn, x, w, g, repeats=args.repeats):8.1f} ms  "
          f"(max difference from shift {diff:.1e} of its largest value)", flush=True)


if __name__ == "__main__":
  main()

"""What a subnet costs under a selection metric p (TOFA section 3.4).

Metrics:
  mflops:  multiply-adds in millions (`flops.count`);
  params:  parameters in millions;
  memory:  an activation-memory estimate in MB: the peak, over the layers of a
           batch-1 float32 forward pass run op by op without fusion, of the
           bytes of the tensors alive at once (an op's input and output, plus
           the block input an MBConv keeps for its residual);
  latency: milliseconds on the current JAX backend, measured on the compiled
           static subnet (`latency.LatencyMeter`), batch 1.

Analytic metrics are computed in Python and cached per arch; latency is
measured at most once per arch.
"""

from __future__ import annotations

from collections.abc import Callable

from tofa_jax.space import arch as arch_lib
from tofa_jax.space import flops
from tofa_jax.space import plan as plan_lib
from tofa_jax.space.search_space import SearchSpace

METRICS = ("mflops", "params", "memory", "latency")
UNITS = {"mflops": "MFLOPs", "params": "M params", "memory": "MB", "latency": "ms"}


def activation_mb(space: SearchSpace, arch: arch_lib.Arch, bytes_per_value: int = 4) -> float:
  """Peak live activation memory (MB) of a batch-1 forward pass, op by op."""
  peak = 0

  def op(n_in: int, n_out: int, held: int = 0) -> None:
    nonlocal peak
    peak = max(peak, n_in + n_out + held)

  size = arch.resolution
  out = plan_lib.conv_out_size(size, 3, 2, space.padding)
  op(3 * size * size, arch.width[0] * out * out)
  size = out
  for lp in plan_lib.plan(space, arch):
    x = lp.c_in * size * size
    held = x if lp.residual != "none" else 0
    if lp.expand:
      op(x, lp.mid * size * size, held)
    out = plan_lib.conv_out_size(size, lp.kernel, lp.stride, space.padding)
    op(lp.mid * size * size, lp.mid * out * out, held)
    op(lp.mid * out * out, lp.c_out * out * out, held)
    size = out
  c_last, c_head = arch.width[-2], arch.width[-1]
  if space.head == "conv":
    op(c_last * size * size, c_head * size * size)
  else:
    c_exp = plan_lib.head_expand_width(space, arch)
    op(c_last * size * size, c_exp * size * size)
  return peak * bytes_per_value / 2**20


class CostModel:
  """p(arch) for a named metric, cached per (metric, arch)."""

  def __init__(self, space: SearchSpace, num_classes: int,
               latency_ms: Callable[[arch_lib.Arch], float] | None = None):
    self.space, self.num_classes, self._latency_ms = space, num_classes, latency_ms
    self._cache: dict[tuple[str, arch_lib.Arch], float] = {}

  def __call__(self, arch: arch_lib.Arch, metric: str) -> float:
    key = (metric, arch)
    if key not in self._cache:
      self._cache[key] = self._compute(arch, metric)
    return self._cache[key]

  def _compute(self, arch: arch_lib.Arch, metric: str) -> float:
    if metric == "mflops":
      return flops.count(self.space, arch, self.num_classes).mflops
    if metric == "params":
      return flops.count(self.space, arch, self.num_classes).mparams
    if metric == "memory":
      return activation_mb(self.space, arch)
    if metric == "latency":
      if self._latency_ms is None:
        raise ValueError("palette.metric='latency' needs a latency meter (the trained "
                         "supernet's variables)")
      return self._latency_ms(arch)
    raise ValueError(f"palette.metric={metric!r} is unknown; choose one of {list(METRICS)}")

  def metric_fn(self, metric: str) -> Callable[[arch_lib.Arch], float]:
    if metric not in METRICS:
      raise ValueError(f"palette.metric={metric!r} is unknown; choose one of {list(METRICS)}")
    return lambda arch: self(arch, metric)

"""A subnet's latency in a deployment runtime (`palette.latency_runtime`).

Each subnet is extracted to its static network, BatchNorm is folded
(`folded_net`), and the function is converted for the runtime
(`runtimes.session`: jax, onnxruntime or tflite) with a fixed thread count. Per
batch size it then follows `cost.latency.median_ms`: warm-up calls, then the
median of `repeats` calls on zero images at the subnet's resolution. Values do
not change the time, so the supernet's weights serve as they are. Conversion is
not timed; each (arch, batch) is measured once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tofa_jax.cost import latency
from tofa_jax.deploy import runtimes
from tofa_jax.model import static_net
from tofa_jax.space import arch as arch_lib
from tofa_jax.space.search_space import SearchSpace
from tofa_jax.weights import folded_net


class RuntimeLatencyMeter:
  def __init__(self, space: SearchSpace, variables: dict, num_classes: int,
               runtime: str = "jax", threads: int = 1, repeats: int = 20, warmup: int = 2):
    runtimes.check(runtime)
    latency.check(warmup, repeats)
    if threads < 1:
      raise ValueError(f"palette.latency_threads={threads}; use at least 1")
    self.space, self.variables, self.num_classes = space, variables, num_classes
    self.runtime, self.threads, self.repeats, self.warmup = runtime, threads, repeats, warmup
    self._cache: dict[tuple[arch_lib.Arch, int], float] = {}

  def describe(self) -> dict:
    """What the figures mean: runtime, threads (None: the runtime's default), rule."""
    return {"runtime": self.runtime, "threads": None if self.runtime == "jax" else self.threads,
            "warmup": self.warmup, "repeats": self.repeats, "statistic": "median"}

  def __call__(self, arch: arch_lib.Arch, batch_size: int = 1) -> float:
    """Median milliseconds of one forward pass of `batch_size` images."""
    return self.measure(arch, (batch_size,))[batch_size]

  def measure(self, arch: arch_lib.Arch, batch_sizes: Sequence[int]) -> dict[int, float]:
    todo = [b for b in batch_sizes if (arch, b) not in self._cache]
    if todo:
      _, static_vars = static_net.extract(self.space, arch, self.variables, self.num_classes)
      r = arch.resolution
      sess = runtimes.session(self.runtime, folded_net.subnet_fn(self.space, arch, static_vars),
                              (r, r, 3), self.threads)
      for b in todo:
        x = np.zeros((b, r, r, 3), np.float32)
        self._cache[(arch, b)] = latency.median_ms(lambda x=x: sess(x), self.warmup,
                                                   self.repeats)
    return {b: self._cache[(arch, b)] for b in batch_sizes}

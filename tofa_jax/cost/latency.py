"""Latency of a subnet on the current JAX backend.

The subnet is extracted to a static Flax model (`static_net.extract`), jitted,
warmed up (the compile is not timed), then run `repeats` times per batch size;
the median wall time of a call, including `block_until_ready`, is reported in
milliseconds. Values do not affect the time, so the supernet's weights are used
as they are.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tofa_jax.model import static_net
from tofa_jax.space import arch as arch_lib
from tofa_jax.space.search_space import SearchSpace


class LatencyMeter:
  def __init__(self, space: SearchSpace, variables: dict, num_classes: int,
               repeats: int = 20, warmup: int = 2):
    if repeats < 1:
      raise ValueError(f"palette.latency_repeats={repeats}; use at least 1")
    self.space, self.variables, self.num_classes = space, variables, num_classes
    self.repeats, self.warmup = repeats, max(1, warmup)
    self._cache: dict[tuple[arch_lib.Arch, int], float] = {}

  def __call__(self, arch: arch_lib.Arch, batch_size: int = 1) -> float:
    """Median milliseconds of one forward pass of `batch_size` images."""
    return self.measure(arch, (batch_size,))[batch_size]

  def measure(self, arch: arch_lib.Arch, batch_sizes: Sequence[int]) -> dict[int, float]:
    todo = [b for b in batch_sizes if (arch, b) not in self._cache]
    if todo:
      model, variables = static_net.extract(self.space, arch, self.variables, self.num_classes)
      variables = jax.device_put(variables)
      forward = jax.jit(model.apply)
      for b in todo:
        x = jnp.zeros((b, arch.resolution, arch.resolution, 3), jnp.float32)
        for _ in range(self.warmup):
          forward(variables, x).block_until_ready()
        times = []
        for _ in range(self.repeats):
          t0 = time.perf_counter()
          forward(variables, x).block_until_ready()
          times.append(time.perf_counter() - t0)
        self._cache[(arch, b)] = float(np.median(times)) * 1e3
    return {b: self._cache[(arch, b)] for b in batch_sizes}

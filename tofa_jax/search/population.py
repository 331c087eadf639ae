"""Subnet-population sampling by cost bin (RSS section 6.1, evaluation protocol).

The metric's range, from the smallest subnet to the largest, is cut into
`num_bins` equal bins, and `per_bin` distinct random subnets are drawn in each
by randomising every setting until the subnet falls into the bin. Subnets at
the ends of the range are rare under uniform sampling; as RSS does, a bin that
stays short is filled with the widths locked at their minimum (lower half of
the range) or maximum (upper half).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from tofa_jax.space import arch as arch_lib
from tofa_jax.space.genome import Genome


@dataclasses.dataclass
class Bin:
  low: float
  high: float
  archs: list[arch_lib.Arch]

  @property
  def centre(self) -> float:
    return (self.low + self.high) / 2


def sample_bins(genome: Genome, cost: Callable[[arch_lib.Arch], float], num_bins: int,
                per_bin: int, rng: np.random.Generator, tries: int = 2000) -> list[Bin]:
  """`num_bins` bins over [cost(min), cost(max)], each with up to `per_bin` subnets."""
  if num_bins < 1 or per_bin < 1:
    raise ValueError(f"palette.population_bins={num_bins}, palette.population_per_bin="
                     f"{per_bin}; use at least 1 of each")
  n_choices = [len(g.choices) for g in genome.genes]
  lo = cost(genome.decode([0] * len(n_choices)))
  hi = cost(genome.decode([n - 1 for n in n_choices]))
  edges = np.linspace(lo, hi, num_bins + 1)
  bins = [Bin(float(a), float(b), []) for a, b in zip(edges[:-1], edges[1:], strict=True)]
  widths = [i for i, g in enumerate(genome.genes) if g.kind == "width"]

  def draw(lock: int | None) -> arch_lib.Arch:
    idx = [int(rng.integers(n)) for n in n_choices]
    if lock is not None:
      for i in widths:
        idx[i] = 0 if lock == 0 else n_choices[i] - 1
    return genome.decode(idx)

  for b_i, b in enumerate(bins):
    last = b_i == num_bins - 1
    lock_to = 0 if b.centre < (lo + hi) / 2 else 1
    for attempt in range(2 * tries):
      if len(b.archs) == per_bin:
        break
      arch = draw(None if attempt < tries else lock_to)
      c = cost(arch)
      inside = b.low <= c < b.high or (last and c == b.high)
      if inside and arch not in b.archs:
        b.archs.append(arch)
  return bins

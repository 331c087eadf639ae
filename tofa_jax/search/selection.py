"""TOFA's fixed subnet selection rule (Algorithm 2) and palette budgets.

For a budget t, among the subnets of Omega whose metric p(a) <= t, pick the one
with the highest index. Two indices (section 3.4):
  'last':  the last iteration the subnet was sampled (Algorithm 2 as printed);
  'score': s(a), the sum of the iterations it was sampled at (the text).

Two choices the paper leaves open, made here:
  * Subnets trained at every step by construction (the sandwich's min subnet,
    passed as `fixed`) would hold the highest index of all and win every
    budget; their index says nothing about a random draw, so they rank below
    every sampled subnet and are picked only when nothing else fits.
  * Equal indices (the random subnets of one iteration) go to the one with the
    larger p(a), which uses more of the budget; then to the one recorded first.
p is evaluated lazily, one index level at a time, which keeps a measured
metric (latency) cheap.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np

from tofa_jax.space import arch as arch_lib

INDICES = ("last", "score")


def select(omega: Sequence[tuple[arch_lib.Arch, Mapping[str, Any]]],
           metric: Callable[[arch_lib.Arch], float], budgets: Sequence[float],
           index: str = "last", fixed: Collection[arch_lib.Arch] = ()
           ) -> list[arch_lib.Arch | None]:
  """Algorithm 2 for every budget; None where no subnet of Omega fits.

  Args:
    omega: (arch, entry) pairs with entry['last'] and entry['score'], as
      `SubnetRecord.archs()` returns them.
    metric: p, e.g. `CostModel.metric_fn('mflops')`.
    budgets: the budgets t.
    index: 'last' or 'score'.
    fixed: subnets sampled at every step by construction (ranked last).
  """
  if index not in INDICES:
    raise ValueError(f"palette.index={index!r} is unknown; choose one of {list(INDICES)}")
  fixed = set(fixed)
  # Stable sort: equal keys keep Omega's order.
  order = sorted(range(len(omega)),
                 key=lambda i: (omega[i][0] in fixed, -omega[i][1][index]))
  groups = [[omega[i][0] for i in grp] for _, grp in itertools.groupby(
      order, key=lambda i: (omega[i][0] in fixed, omega[i][1][index]))]
  out: list[arch_lib.Arch | None] = []
  for t in budgets:
    pick = None
    for group in groups:
      costs = [(metric(a), a) for a in group]
      fitting = [(c, a) for c, a in costs if c <= t]
      if fitting:
        pick = max(fitting, key=lambda ca: ca[0])[1]  # first of equals
        break
    out.append(pick)
  return out


def budgets(explicit: Sequence[float], num: int, lowest: float, highest: float,
            window: tuple[float, float] | None = None) -> list[float]:
  """The explicit budgets (sorted), or `num` evenly spaced from the smallest
  subnet's cost to the largest's, within `window` where it overlaps that range
  (the space's MFLOPs window: TOFA's palette spans its 200-2400 MFLOPs)."""
  if window is not None and max(lowest, window[0]) <= min(highest, window[1]):
    lowest, highest = max(lowest, window[0]), min(highest, window[1])
  if explicit:
    values = sorted(float(b) for b in explicit)
    if values[-1] < lowest:
      raise ValueError(f"palette.budgets={list(explicit)} are all below the smallest subnet "
                       f"({lowest:.4g}); raise them")
    return values
  if num < 1:
    raise ValueError(f"palette.num_budgets={num}; give at least 1, or list palette.budgets")
  if num == 1:
    return [float(highest)]
  return [float(x) for x in np.linspace(lowest, highest, num)]

"""TOFA's fixed subnet selection rule (Algorithm 2) and palette budgets.

Per budget t, the subnet of Omega with the highest index among those the rule
allows. Two rules (`palette.rule`):
  'bands':   for sorted budgets t_1 < ... < t_m, member i comes from its size
             range t_{i-1} < p(a) <= t_i (t_0 = -inf): "a fixed subnet
             selection rule to select a subnet within each size range" (TOFA
             section 3.4). One model per budget, each larger than the last.
             Where a range holds no subnet of Omega, the member falls back to
             p(a) <= t_i and is marked as a fallback.
  'literal': p(a) <= t alone, Algorithm 2 as printed. Every budget above the
             last iterations' largest fitting draw gets the same subnet.
Two indices (section 3.4):
  'last':  the last iteration the subnet was sampled (Algorithm 2 as printed);
  'score': s(a), the sum of the iterations it was sampled at (the text). The
           two differ only on subnets drawn more than once; random draws seldom
           repeat, so within a range they nearly always pick the same subnet.

Two choices the paper leaves open, made here:
  * Subnets trained at every step by construction (the sandwich's min subnet,
    passed as `fixed`) would hold the highest index of all and win every
    budget; their index says nothing about a random draw, so they rank below
    every sampled subnet and are picked only when nothing else fits.
  * Equal indices (the random subnets of one iteration) go to the one with the
    larger p(a), which uses more of the budget; then to the one recorded first.
p is evaluated lazily, one index level at a time, and once per subnet, which
keeps a measured metric (latency) cheap.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np

from tofa_jax.space import arch as arch_lib

INDICES = ("last", "score")
RULES = ("bands", "literal")


@dataclasses.dataclass(frozen=True)
class Selected:
  """The rule's pick for one budget: None where no subnet of Omega fits. `fallback`:
  rule 'bands' found nothing in the budget's size range and picked under p(a) <= t."""
  arch: arch_lib.Arch | None
  fallback: bool = False


def select(omega: Sequence[tuple[arch_lib.Arch, Mapping[str, Any]]],
           metric: Callable[[arch_lib.Arch], float], budgets: Sequence[float],
           index: str = "last", fixed: Collection[arch_lib.Arch] = (),
           rule: str = "bands") -> list[Selected]:
  """Algorithm 2 for every budget, in the order of `budgets`.

  Args:
    omega: (arch, entry) pairs with entry['last'] and entry['score'], as
      `SubnetRecord.archs()` returns them.
    metric: p, e.g. `CostModel.metric_fn('mflops')`.
    budgets: the budgets t (any order; 'bands' takes the ranges between them sorted).
    index: 'last' or 'score'.
    fixed: subnets sampled at every step by construction (ranked last).
    rule: 'bands' (each budget's size range) or 'literal' (p(a) <= t alone).
  """
  if index not in INDICES:
    raise ValueError(f"palette.index={index!r} is unknown; choose one of {list(INDICES)}")
  if rule not in RULES:
    raise ValueError(f"palette.rule={rule!r} is unknown; choose one of {list(RULES)}")
  fixed = set(fixed)
  # Stable sort: equal keys keep Omega's order.
  order = sorted(range(len(omega)),
                 key=lambda i: (omega[i][0] in fixed, -omega[i][1][index]))
  groups = [[omega[i][0] for i in grp] for _, grp in itertools.groupby(
      order, key=lambda i: (omega[i][0] in fixed, omega[i][1][index]))]
  costs: dict[arch_lib.Arch, float] = {}

  def cost(a: arch_lib.Arch) -> float:
    if a not in costs:
      costs[a] = metric(a)
    return costs[a]

  def best(low: float, high: float) -> arch_lib.Arch | None:
    """The highest-index subnet with low < p(a) <= high."""
    for group in groups:
      fitting = [(cost(a), a) for a in group if low < cost(a) <= high]
      if fitting:
        return max(fitting, key=lambda ca: ca[0])[1]  # first of equals
    return None

  # Each budget's lower edge: the next smaller budget (equal budgets share one range,
  # so the second of two equals finds its range empty).
  ranked = sorted(range(len(budgets)), key=lambda i: budgets[i])
  low = {i: -math.inf for i in ranked}
  if rule == "bands":
    for prev, i in itertools.pairwise(ranked):
      low[i] = float(budgets[prev])
  out = []
  for i, t in enumerate(budgets):
    pick = best(low[i], t)
    if pick is None and low[i] > -math.inf:
      pick = best(-math.inf, t)
      out.append(Selected(pick, fallback=pick is not None))
    else:
      out.append(Selected(pick))
  return out


def duplicates(archs: Sequence[arch_lib.Arch | None]) -> list[int | None]:
  """For each subnet, the position of the first earlier one that is the same subnet,
  or None (also for None entries): a palette's members that repeat another."""
  first: dict[arch_lib.Arch, int] = {}
  out: list[int | None] = []
  for i, a in enumerate(archs):
    out.append(None if a is None else first.get(a))
    if a is not None:
      first.setdefault(a, i)
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

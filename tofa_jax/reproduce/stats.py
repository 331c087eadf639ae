"""Figures over seeds: mean +- std, and whether a claimed ordering held against the spread.

A claim "A beats B" holds at this scale when A's mean exceeds B's by more than the seeds'
spread (the larger of the two standard deviations); it is "within the spread" when the gap
is smaller, and reversed when B's mean exceeds A's by more than the spread. A claim "A is
as good as B" (the zero-cost rule against the searches, a palette member against training it
alone) fails only when A falls below B by more than the spread. With one seed there is no
spread: the verdict says so.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class Summary:
  values: tuple[float, ...]

  @property
  def mean(self) -> float:
    return sum(self.values) / len(self.values) if self.values else math.nan

  @property
  def std(self) -> float:
    """Sample standard deviation (ddof=1); 0 for one value, nan for none."""
    n = len(self.values)
    if n == 0:
      return math.nan
    if n == 1:
      return 0.0
    m = self.mean
    return math.sqrt(sum((v - m) ** 2 for v in self.values) / (n - 1))

  def pct(self) -> str:
    """'61.3 +- 1.2' in percent (one value: '61.3')."""
    if not self.values:
      return "n/a"
    if len(self.values) == 1:
      return f"{100 * self.mean:.1f}"
    return f"{100 * self.mean:.1f} ± {100 * self.std:.1f}"


def summary(values: Sequence[float]) -> Summary:
  return Summary(tuple(float(v) for v in values if v is not None and not math.isnan(v)))


@dataclasses.dataclass(frozen=True)
class Verdict:
  holds: str  # 'held', 'within the spread', 'reversed', 'one seed: no spread'
  gap: float  # mean(a) - mean(b)
  spread: float

  def sentence(self, claim: str) -> str:
    gap = f"{100 * self.gap:+.1f} points"
    if self.holds == "one seed: no spread":
      return f"{claim}: a gap of {gap} on one seed, so no verdict (the full study runs 3)."
    return (f"{claim}: {self.holds} (gap {gap} against a spread of "
            f"{100 * self.spread:.1f} points over the seeds).")


def not_worse(a: Summary, b: Summary, what: str) -> str:
  """A sentence on a claim that `a` is *as good as* `b`: it holds unless `a` falls below
  `b` by more than the spread; `a` above `b` beyond the spread holds too, and says so."""
  gap = a.mean - b.mean
  if len(a.values) < 2 or len(b.values) < 2:
    return f"{what}: a gap of {100 * gap:+.1f} points on one seed, so no verdict."
  spread = max(a.std, b.std)
  if gap < -spread:
    outcome = "worse by more than the spread, so the claim did not hold"
  elif gap > spread:
    outcome = "better by more than the spread, so the claim held, and more"
  else:
    outcome = "no difference beyond the spread, as claimed"
  return (f"{what}: {100 * gap:+.1f} points against a spread of {100 * spread:.1f}, "
          f"{outcome}.")


def compare(a: Summary, b: Summary, higher_is_better: bool = True) -> Verdict:
  """Whether `a` beats `b` (higher, or lower when `higher_is_better` is False)."""
  gap = a.mean - b.mean
  if len(a.values) < 2 or len(b.values) < 2:
    return Verdict("one seed: no spread", gap, 0.0)
  spread = max(a.std, b.std)
  better = gap if higher_is_better else -gap
  if better > spread:
    return Verdict("held", gap, spread)
  if better < -spread:
    return Verdict("reversed", gap, spread)
  return Verdict("within the spread", gap, spread)

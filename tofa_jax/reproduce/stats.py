"""Figures over seeds (mean ± std) and paired verdicts on the papers' claims.

Every arm of a comparison has one result per seed, and the arms of one seed share its
labelled split (each seed draws its own), so a claim about arms A and B is judged on the
paired per-seed differences d_s = A_s - B_s (a seed where either is missing is left
out). With n ≥ 2 seeds:

  mean ± sd   the differences' mean and sample standard deviation (ddof=1), in points;
  sign count  how many seeds' differences share the mean's sign;
  interval    the 95% t-interval of the mean, mean ± t(0.975, n-1) · sd/√n, whose
              half-width is the paired spread;
  margin      MARGIN, one point of top-1 (or of NFR, a share of the same test images):
              a difference inside ±MARGIN counts as no difference.

Why one point: the 1,000-image test split alone has a standard error of about 1.3 points,
so a smaller margin would ask the seeds to resolve gaps that one evaluation cannot; and
the papers' claimed gains are 2 points or more (TOFA Table 3: 2-4), while their "about
the same" is "within a fraction of a point" (REG-NAS Tables 1-3), so a larger margin
would let a claimed gain pass as a tie.

The interval is oriented so that "better" means higher (top-1) or lower (NFR). Verdicts on
a claim "A beats B" (`beats`):

  held               the interval lies above zero: A is better on these seeds;
  reversed           the interval lies below zero: B is better;
  within the margin  the interval contains zero and lies inside ±MARGIN: any difference
                     is smaller than the margin, so the claimed gain is not there;
  undecided          the interval contains zero and reaches past the margin (always so
                     when the paired spread is wider than the margin).

Verdicts on a claim "A is as good as B" (`as_good_as`: the zero-cost rule against the
searches, a palette member against training it alone):

  held, and more     the interval lies above +MARGIN: A is better by more than the margin;
  within the margin  the interval lies inside ±MARGIN: as good as, as claimed;
  held               the interval lies above -MARGIN but reaches past +MARGIN: A is not
                     worse by more than the margin, and may be better;
  reversed           the interval lies below -MARGIN: A is worse by more than the margin;
  undecided          the interval straddles -MARGIN (always so when the paired spread is
                     wider than the margin and the interval contains zero).

With fewer than two paired seeds there is no interval: the sentence says so.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import scipy.stats

MARGIN = 0.01  # the equivalence margin: one point of top-1 (fractions, as the results)
CONFIDENCE = 0.95  # of the t-interval of the mean paired difference

HELD, MORE, WITHIN, REVERSED, UNDECIDED = ("held", "held, and more", "within the margin",
                                           "reversed", "undecided")

# The page's statement of the method (report.page prints it above the tables).
METHOD = (
    "Each table ends with a reading: whether the paper's claim held at this scale, judged on "
    "the paired per-seed differences (the arms of one seed share its labelled split; each seed "
    "draws its own): their mean ± sample "
    "std in points, how many seeds share the mean's sign, and the 95% t-interval of the mean "
    "(mean ± t·sd/√n, its half-width the paired spread). The equivalence margin is "
    f"{100 * MARGIN:.1f} point of top-1 (or of NFR): below the 1,000-image test split's standard "
    "error of about 1.3 points, and below the papers' smallest claimed gain (2 points), so a "
    "claimed gain cannot pass as a tie. \"A beats B\": *held* when the interval lies above "
    "zero, *reversed* when below, *within the margin* when it contains zero inside ±margin "
    "(no gain as large as the margin), *undecided* when it contains zero and reaches past the "
    "margin. \"A is as good as B\": *held, and more* when the interval lies above +margin, "
    "*within the margin* when inside ±margin (as claimed), *held* when above −margin but "
    "reaching past +margin, *reversed* when below −margin, *undecided* when it straddles "
    "−margin. A paired spread wider than the margin leaves any interval that contains zero "
    "undecided.")


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


def _present(v) -> bool:
  return v is not None and not math.isnan(v)


def summary(values: Sequence[float]) -> Summary:
  return Summary(tuple(float(v) for v in values if _present(v)))


@dataclasses.dataclass(frozen=True)
class Paired:
  """The per-seed differences a - b over the seeds where both have a value."""
  diffs: tuple[float, ...]

  @property
  def n(self) -> int:
    return len(self.diffs)

  @property
  def mean(self) -> float:
    return summary(self.diffs).mean

  @property
  def std(self) -> float:
    return summary(self.diffs).std

  @property
  def agree(self) -> int:
    """Seeds whose difference has the mean's sign (none when the mean is 0)."""
    m = self.mean
    return sum(1 for d in self.diffs if d * m > 0)

  @property
  def half_width(self) -> float:
    """The paired spread: t(CONFIDENCE, n-1) · sd / √n (nan below two seeds)."""
    if self.n < 2:
      return math.nan
    t = float(scipy.stats.t.ppf(0.5 + CONFIDENCE / 2, self.n - 1))
    return t * self.std / math.sqrt(self.n)

  def interval(self, higher_is_better: bool = True) -> tuple[float, float]:
    """The t-interval of the mean, oriented so that positive favours `a`."""
    m = self.mean if higher_is_better else -self.mean
    return m - self.half_width, m + self.half_width


def paired(a: Sequence[float | None], b: Sequence[float | None]) -> Paired:
  """`a` and `b` hold one value per seed, in the same seed order."""
  if len(a) != len(b):
    raise ValueError(f"paired results need one value per seed on both sides; got {len(a)} "
                     f"and {len(b)}")
  return Paired(tuple(float(x) - float(y) for x, y in zip(a, b, strict=True)
                      if _present(x) and _present(y)))


def beats_verdict(p: Paired, higher_is_better: bool = True) -> str:
  lo, hi = p.interval(higher_is_better)
  if lo > 0:
    return HELD
  if hi < 0:
    return REVERSED
  if lo >= -MARGIN and hi <= MARGIN:
    return WITHIN
  return UNDECIDED


def as_good_as_verdict(p: Paired) -> str:
  lo, hi = p.interval()
  if lo > MARGIN:
    return MORE
  if hi < -MARGIN:
    return REVERSED
  if lo >= -MARGIN and hi <= MARGIN:
    return WITHIN
  if lo >= -MARGIN:
    return HELD
  return UNDECIDED


def _figures(p: Paired) -> str:
  """'+1.2 ± 0.8 points, 3/3 seeds; 95% interval -0.8 to +3.2'."""
  if p.n and all(d == 0 for d in p.diffs):
    sign = f"identical on all {p.n} seeds"
  else:
    sign = f"{p.agree}/{p.n} seeds share its sign"
    lo, hi = p.mean - p.half_width, p.mean + p.half_width
    sign += f"; {100 * CONFIDENCE:.0f}% interval {100 * lo:+.1f} to {100 * hi:+.1f}"
  return f"{100 * p.mean:+.1f} ± {100 * p.std:.1f} points, {sign}"


def _sentence(claim: str, p: Paired, verdict: str) -> str:
  if p.n == 0:
    return f"{claim}: no seed has both results, so no verdict."
  if p.n == 1:
    return f"{claim}: a difference of {100 * p.mean:+.1f} points on 1 seed, so no verdict."
  return f"{claim}: {verdict} ({_figures(p)})."


def beats(a: Sequence[float | None], b: Sequence[float | None], claim: str,
          higher_is_better: bool = True) -> str:
  """A sentence on the claim that `a` beats `b` (higher, or lower when `higher_is_better`
  is False); the figures are of a - b."""
  p = paired(a, b)
  return _sentence(claim, p, beats_verdict(p, higher_is_better))


def as_good_as(a: Sequence[float | None], b: Sequence[float | None], claim: str) -> str:
  """A sentence on the claim that `a` is as good as `b` (higher is better)."""
  p = paired(a, b)
  return _sentence(claim, p, as_good_as_verdict(p))

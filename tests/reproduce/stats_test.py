"""Figures over seeds and the verdict sentences of the results page."""

import math

import numpy as np
import pytest

from tofa_jax.reproduce import stats


def test_summary_matches_numpy_and_formats_percent():
  values = [0.61, 0.64, 0.58]
  s = stats.summary(values)
  assert s.mean == pytest.approx(np.mean(values))
  assert s.std == pytest.approx(np.std(values, ddof=1))
  assert s.pct() == "61.0 ± 3.0"
  assert stats.summary([0.5]).pct() == "50.0" and stats.summary([0.5]).std == 0.0
  assert stats.summary([None, float("nan")]).pct() == "n/a"
  assert math.isnan(stats.summary([]).mean)


@pytest.mark.parametrize("a,b,higher,holds", [
    ([0.70, 0.72, 0.71], [0.60, 0.61, 0.62], True, "held"),
    ([0.60, 0.61, 0.62], [0.70, 0.72, 0.71], True, "reversed"),
    ([0.70, 0.75, 0.65], [0.69, 0.71, 0.70], True, "within the spread"),
    ([0.02, 0.03, 0.025], [0.05, 0.06, 0.055], False, "held"),  # lower is better
    ([0.7], [0.6], True, "one seed: no spread"),
])
def test_compare_judges_the_gap_against_the_larger_std(a, b, higher, holds):
  v = stats.compare(stats.summary(a), stats.summary(b), higher_is_better=higher)
  assert v.holds == holds
  assert v.gap == pytest.approx(np.mean(a) - np.mean(b))
  if holds != "one seed: no spread":
    assert v.spread == pytest.approx(max(np.std(a, ddof=1), np.std(b, ddof=1)))


def test_sentences_say_the_verdict_gap_and_spread():
  v = stats.compare(stats.summary([0.70, 0.72, 0.71]), stats.summary([0.60, 0.61, 0.62]))
  assert v.sentence("A > B") == "A > B: held (gap +10.0 points against a spread of 1.0 " \
                                "points over the seeds)."
  one = stats.compare(stats.summary([0.7]), stats.summary([0.6]))
  assert one.sentence("A > B") == ("A > B: a gap of +10.0 points on one seed, so no verdict "
                                   "(the full study runs 3).")
  same = stats.not_worse(stats.summary([0.70, 0.72]), stats.summary([0.71, 0.70]), "rule")
  assert same == ("rule: +0.5 points against a spread of 1.4, no difference beyond the spread, "
                  "as claimed.")
  better = stats.not_worse(stats.summary([0.90, 0.91]), stats.summary([0.70, 0.71]), "rule")
  assert better == ("rule: +20.0 points against a spread of 0.7, better by more than the "
                    "spread, so the claim held, and more.")
  worse = stats.not_worse(stats.summary([0.70, 0.71]), stats.summary([0.90, 0.91]), "rule")
  assert worse == ("rule: -20.0 points against a spread of 0.7, worse by more than the spread, "
                   "so the claim did not hold.")
  assert stats.not_worse(stats.summary([0.7]), stats.summary([0.6]), "rule") == (
      "rule: a gap of +10.0 points on one seed, so no verdict.")

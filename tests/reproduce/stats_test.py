"""Figures over seeds and the paired verdict sentences of the results page."""

import math

import numpy as np
import pytest

from tofa_jax.reproduce import stats

T2 = 4.302652729911275  # t(0.975, 2 degrees of freedom): the 95% interval on 3 seeds


def test_summary_matches_numpy_and_formats_percent():
  values = [0.61, 0.64, 0.58]
  s = stats.summary(values)
  assert s.mean == pytest.approx(np.mean(values))
  assert s.std == pytest.approx(np.std(values, ddof=1))
  assert s.pct() == "61.0 ± 3.0"
  assert stats.summary([0.5]).pct() == "50.0" and stats.summary([0.5]).std == 0.0
  assert stats.summary([None, float("nan")]).pct() == "n/a"
  assert math.isnan(stats.summary([]).mean)


def test_paired_differences_their_sign_count_and_interval():
  a, b = [0.70, 0.75, 0.65, 0.80], [0.69, 0.71, 0.70, 0.74]
  p = stats.paired(a, b)
  d = np.subtract(a, b)  # +0.01, +0.04, -0.05, +0.06
  assert p.diffs == pytest.approx(tuple(d)) and p.n == 4
  assert p.mean == pytest.approx(0.015)
  assert p.std == pytest.approx(np.std(d, ddof=1))
  assert p.agree == 3  # three seeds above zero, as the mean
  t3 = 3.182446305284263  # t(0.975, 3)
  assert p.half_width == pytest.approx(t3 * np.std(d, ddof=1) / 2)
  assert p.interval() == pytest.approx((0.015 - p.half_width, 0.015 + p.half_width))
  assert p.interval(higher_is_better=False) == pytest.approx((-0.015 - p.half_width,
                                                              -0.015 + p.half_width))
  # A seed missing on either side is left out of the pairs, not shifted.
  q = stats.paired([0.7, None, 0.72, float("nan")], [0.6, 0.61, float("nan"), 0.5])
  assert q.diffs == pytest.approx((0.1,)) and math.isnan(q.half_width)
  assert stats.paired([0.1, 0.2], [0.1, 0.3]).agree == 1
  assert stats.paired([0.1, 0.2], [0.1, 0.2]).agree == 0  # mean 0: no sign to share
  with pytest.raises(ValueError, match=r"^paired results need one value per seed on both "
                                       r"sides; got 2 and 3$"):
    stats.paired([0.1, 0.2], [0.1, 0.2, 0.3])


@pytest.mark.parametrize("diffs,higher,verdict", [
    ([0.10, 0.11, 0.09], True, stats.HELD),  # interval +7.5 to +12.5 points
    ([-0.10, -0.11, -0.09], True, stats.REVERSED),
    ([-0.03, -0.03, -0.03], False, stats.HELD),  # lower is better (NFR)
    ([0.001, -0.001, 0.002], True, stats.WITHIN),  # interval -0.2 to +0.5 points
    ([0.05, -0.03, 0.01], True, stats.UNDECIDED),  # half-width 9.9 points > the margin
    ([0.008, -0.002, 0.006], True, stats.UNDECIDED),  # -0.9 to +1.7: narrow, past +1
])
def test_beats_verdicts_on_the_paired_interval(diffs, higher, verdict):
  b = [0.5, 0.6, 0.7]
  p = stats.paired(np.add(b, diffs).tolist(), b)
  assert stats.beats_verdict(p, higher) == verdict


@pytest.mark.parametrize("diffs,verdict", [
    ([0.19, 0.20, 0.21], stats.MORE),  # interval +17.5 to +22.5 points
    ([0.002, -0.001, 0.0], stats.WITHIN),  # inside ±1 point
    ([0.01, 0.02, 0.015], stats.HELD),  # +0.3 to +2.7: above -1, past +1
    ([-0.20, -0.21, -0.19], stats.REVERSED),
    ([-0.05, 0.03, 0.0], stats.UNDECIDED),  # straddles -1 point
])
def test_as_good_as_verdicts_on_the_paired_interval(diffs, verdict):
  b = [0.5, 0.6, 0.7]
  assert stats.as_good_as_verdict(stats.paired(np.add(b, diffs).tolist(), b)) == verdict


def test_a_noisier_arm_no_longer_passes_as_good_as():
  # The same mean gap of -0.5 points: a quiet arm is within the margin, a noisy one is
  # undecided (the unpaired max-of-stds spread let noise pass as "as claimed").
  b = [0.60, 0.70, 0.80]
  quiet = [0.596, 0.695, 0.794]
  noisy = [0.55, 0.75, 0.785]
  assert stats.as_good_as_verdict(stats.paired(quiet, b)) == stats.WITHIN
  assert stats.as_good_as_verdict(stats.paired(noisy, b)) == stats.UNDECIDED


def test_sentences_say_the_verdict_the_paired_figures_and_the_sign_count():
  hw = T2 * 0.01 / math.sqrt(3)  # sd of the differences 0.10, 0.11, 0.09 is 1 point
  assert f"{100 * (0.10 - hw):+.1f} to {100 * (0.10 + hw):+.1f}" == "+7.5 to +12.5"
  assert stats.beats([0.70, 0.72, 0.71], [0.60, 0.61, 0.62], "A > B") == (
      "A > B: held (+10.0 ± 1.0 points, 3/3 seeds share its sign; 95% interval +7.5 to "
      "+12.5).")
  assert stats.beats([0.02, 0.03, 0.025], [0.05, 0.06, 0.055], "A lowers NFR",
                     higher_is_better=False) == (
      "A lowers NFR: held (-3.0 ± 0.0 points, 3/3 seeds share its sign; 95% interval -3.0 to "
      "-3.0).")
  assert stats.as_good_as([0.55, 0.75, 0.785], [0.60, 0.70, 0.80], "rule") == (
      "rule: undecided (-0.5 ± 5.1 points, 2/3 seeds share its sign; 95% interval -13.1 to "
      "+12.1).")  # differences -5, +5, -1.5 points: sd 5.07, half-width 4.30 x 5.07 / √3
  # Identical results on every seed (a forced tie) say so.
  assert stats.as_good_as([0.7, 0.8, 0.6], [0.7, 0.8, 0.6], "rule") == (
      "rule: within the margin (+0.0 ± 0.0 points, identical on all 3 seeds).")
  assert stats.beats([0.7], [0.6], "A > B") == (
      "A > B: a difference of +10.0 points on 1 seed, so no verdict.")
  assert stats.as_good_as([0.7, None], [None, 0.6], "rule") == (
      "rule: no seed has both results, so no verdict.")


def test_the_page_states_the_margin_and_each_verdict():
  assert stats.MARGIN == 0.01
  assert "The equivalence margin is 1.0 point of top-1 (or of NFR)" in stats.METHOD
  for verdict in (stats.HELD, stats.MORE, stats.WITHIN, stats.REVERSED, stats.UNDECIDED):
    assert f"*{verdict}*" in stats.METHOD
  assert "spread (the larger" not in stats.METHOD

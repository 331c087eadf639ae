"""Negative flip rate (REG-NAS eq. 1) against a plain-loop reference, and the rewards."""

import numpy as np
import pytest

from tofa_jax.search import regression


def _nfr_reference(p1, p2, y):
  flips = 0
  for a, b, t in zip(p1, p2, y, strict=True):
    if a == t and b != t:
      flips += 1
  return flips / len(y)


def test_nfr_matches_the_definition():
  rng = np.random.default_rng(0)
  for n, classes in ((1, 2), (17, 3), (500, 10)):
    y = rng.integers(classes, size=n)
    p1 = np.where(rng.random(n) < 0.7, y, rng.integers(classes, size=n))
    p2 = np.where(rng.random(n) < 0.6, y, rng.integers(classes, size=n))
    assert regression.nfr(p1, p2, y) == pytest.approx(_nfr_reference(p1, p2, y), abs=1e-12)
    m = regression.nfr_matrix([p1, p2, y], y)
    want = [[_nfr_reference(a, b, y) for b in (p1, p2, y)] for a in (p1, p2, y)]
    np.testing.assert_allclose(m, want, atol=1e-12)
    assert np.all(np.diag(m) == 0) and np.all(m[:, 2] == 0)  # the labels never flip


def test_nfr_is_asymmetric_and_counts_exactly():
  y = np.array([0, 1, 2, 3])
  ref = np.array([0, 1, 0, 0])  # right on 0 and 1
  tgt = np.array([0, 2, 2, 3])  # right on 0, 2, 3
  assert regression.nfr(ref, tgt, y) == 0.25  # sample 1 flips
  assert regression.nfr(tgt, ref, y) == 0.5  # samples 2 and 3 flip


def test_rewards():
  y = np.array([0, 1, 2, 3])
  ref, tgt = np.array([0, 1, 0, 0]), np.array([0, 2, 2, 3])
  top1 = 0.75
  assert regression.PRESETS["R0"](tgt, y, ref) == top1
  assert regression.PRESETS["R1"](tgt, y, ref) == -0.25
  assert regression.PRESETS["R2"](tgt, y, ref) == top1 - 0.25
  assert regression.reward("R0", (2.0, 4.0))(tgt, y, ref) == 2 * top1 - 4 * 0.25
  with pytest.raises(ValueError, match=r"palette.reward='R3'.*\['R0', 'R1', 'R2'\]"):
    regression.reward("R3")
  with pytest.raises(ValueError, match="palette.lambdas"):
    regression.reward("R2", (1.0,))


def test_bad_shapes_are_refused():
  with pytest.raises(ValueError, match="one length"):
    regression.nfr(np.zeros(3), np.zeros(4), np.zeros(3))

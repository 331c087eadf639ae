"""Negative flips between models (REG-NAS section 3.1) and the REG-NAS search reward.

NFR(phi1, phi2; D) = (1/N) sum_i 1(y1_i = y_i and y2_i != y_i): the fraction of
samples that phi1 (the reference, usually the smaller or less accurate model)
gets right and phi2 (the target) gets wrong. It is asymmetric.

The reward of REG-NAS section 3.3 is R = lambda1 * Top1(target) - lambda2 *
NFR(reference, target), with the presets R0 (1, 0: accuracy only, what NAS
usually maximises), R1 (0, 1: negative flips only) and R2 (1, 1: the REG-NAS
default).
"""

from __future__ import annotations

import dataclasses

import numpy as np


def nfr(reference_pred: np.ndarray, target_pred: np.ndarray, labels: np.ndarray) -> float:
  """Negative flip rate from `reference_pred` to `target_pred` (class indices)."""
  ref, tgt, y = (np.asarray(a) for a in (reference_pred, target_pred, labels))
  if not ref.shape == tgt.shape == y.shape or y.ndim != 1:
    raise ValueError(f"predictions {ref.shape}, {tgt.shape} and labels {y.shape} must be "
                     "1-D and of one length")
  if len(y) == 0:
    raise ValueError("NFR of an empty dataset is undefined")
  return float(np.mean((ref == y) & (tgt != y)))


def nfr_matrix(preds: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
  """M[i, j] = NFR(model i -> model j): i right, j wrong. The diagonal is 0."""
  y = np.asarray(labels)
  right = np.stack([np.asarray(p) == y for p in preds]).astype(np.float64)  # (M, N)
  return right @ (1.0 - right).T / len(y)


def top1(pred: np.ndarray, labels: np.ndarray) -> float:
  return float(np.mean(np.asarray(pred) == np.asarray(labels)))


@dataclasses.dataclass(frozen=True)
class Reward:
  """R = lambda1 * Top1 - lambda2 * NFR(reference, target)."""

  lambda1: float
  lambda2: float

  def __call__(self, target_pred: np.ndarray, labels: np.ndarray,
               reference_pred: np.ndarray | None = None) -> float:
    r = self.lambda1 * top1(target_pred, labels)
    if reference_pred is not None and self.lambda2:
      r -= self.lambda2 * nfr(reference_pred, target_pred, labels)
    return r


PRESETS = {"R0": Reward(1.0, 0.0), "R1": Reward(0.0, 1.0), "R2": Reward(1.0, 1.0)}


def reward(name: str, lambdas: tuple[float, ...] = ()) -> Reward:
  """A preset by name, or (lambda1, lambda2) when `lambdas` is given."""
  if lambdas:
    if len(lambdas) != 2:
      raise ValueError(f"palette.lambdas={tuple(lambdas)} needs two numbers (lambda1, lambda2) "
                       "or () for the preset named by palette.reward")
    return Reward(float(lambdas[0]), float(lambdas[1]))
  if name not in PRESETS:
    raise ValueError(f"palette.reward={name!r} is unknown; choose one of {sorted(PRESETS)}")
  return PRESETS[name]

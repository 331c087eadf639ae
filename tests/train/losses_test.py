"""Loss terms against NumPy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tofa_jax.train import losses


def _np_log_softmax(z: np.ndarray) -> np.ndarray:
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _np_focal_distillation(student, reference, labels, alpha, beta, t):
  """Yan et al.'s FD-KD, written out per sample in float64."""
  total = 0.0
  for z, z_ref, y in zip(student, reference, labels, strict=True):
    log_p_ref = _np_log_softmax(z_ref / t)
    kl = np.sum(np.exp(log_p_ref) * (log_p_ref - _np_log_softmax(z / t)))
    weight = alpha + beta * float(np.argmax(z_ref) == y)
    total += weight * t * t * kl
  return total / len(labels)


@pytest.mark.parametrize("alpha,beta,t", [(1.0, 5.0, 100.0), (1.0, 0.0, 1.0), (0.5, 2.0, 4.0),
                                          (0.0, 1.0, 2.0)])
def test_focal_distillation_matches_numpy(alpha, beta, t):
  rng = np.random.default_rng(0)
  student = rng.normal(size=(16, 7)) * 3
  reference = rng.normal(size=(16, 7)) * 3
  labels = np.where(rng.random(16) < 0.5, reference.argmax(-1), rng.integers(0, 7, 16))
  assert 0 < np.sum(reference.argmax(-1) == labels) < 16  # both weights occur
  got = losses.focal_distillation(jnp.asarray(student, jnp.float32),
                                  jnp.asarray(reference, jnp.float32), jnp.asarray(labels),
                                  alpha=alpha, beta=beta, temperature=t)
  want = _np_focal_distillation(student, reference, labels, alpha, beta, t)
  np.testing.assert_allclose(float(got), want, rtol=2e-4 if t > 10 else 1e-5)


def test_focal_distillation_weights_and_reduction():
  rng = np.random.default_rng(1)
  student = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
  reference = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
  right = jnp.argmax(reference, -1)
  wrong = (right + 1) % 5
  fd = lambda labels, a, b: float(losses.focal_distillation(  # noqa: E731
      student, reference, labels, alpha=a, beta=b, temperature=2.0))
  kd = fd(right, 1.0, 0.0)  # alpha=1, beta=0: plain KD, the labels do not matter
  assert kd > 0 and fd(wrong, 1.0, 0.0) == kd
  np.testing.assert_allclose(fd(right, 1.0, 5.0), 6 * kd, rtol=1e-6)  # every sample right
  np.testing.assert_allclose(fd(wrong, 1.0, 5.0), kd, rtol=1e-6)  # none right
  # The mean over the batch: one half right, one half wrong.
  half = jnp.concatenate([right[:3], wrong[3:]])
  per_sample = [float(losses.focal_distillation(student[i:i + 1], reference[i:i + 1],
                                                half[i:i + 1], alpha=1.0, beta=5.0,
                                                temperature=2.0)) for i in range(6)]
  np.testing.assert_allclose(fd(half, 1.0, 5.0), np.mean(per_sample), rtol=1e-6)
  assert per_sample[0] > 0 and fd(right, 1.0, 5.0) > fd(half, 1.0, 5.0) > fd(wrong, 1.0, 5.0)
  # Zero where the student equals the reference; no gradient reaches the reference.
  assert abs(float(losses.focal_distillation(reference, reference, right, alpha=1.0, beta=5.0,
                                             temperature=100.0))) < 1e-6
  grad = jax.grad(lambda r: losses.focal_distillation(
      student, jax.lax.stop_gradient(r), right, alpha=1.0, beta=5.0, temperature=2.0))(reference)
  assert not np.any(np.asarray(grad))

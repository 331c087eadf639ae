"""On-device augmentation: ranges, determinism, and identity settings."""

import jax
import numpy as np
import pytest

from tofa_jax.data import augment


def _images():
  return np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3)).astype(np.uint8)


def test_identity_settings_return_the_input():
  cfg = augment.AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False,
                              jitter=0.0)
  x = _images()
  out = np.asarray(jax.jit(lambda k, im: augment.weak(k, im, cfg))(jax.random.PRNGKey(0), x))
  assert out.shape == (3, 16, 16, 3) and out.dtype == np.float32
  np.testing.assert_allclose(out, x / 255.0, atol=1e-5)
  flip = augment.AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), jitter=0.0)
  out = np.asarray(augment.weak(jax.random.PRNGKey(0), x, flip))
  for i in range(3):  # each image is either untouched or mirrored
    assert (np.allclose(out[i], x[i] / 255.0, atol=1e-5)
            or np.allclose(out[i], x[i, :, ::-1] / 255.0, atol=1e-5))


@pytest.mark.parametrize("policy", augment.STRONG_POLICIES)
def test_weak_and_strong_are_keyed_and_in_range(policy):
  cfg = augment.AugmentConfig(strong=policy)
  x = _images()
  weak = jax.jit(lambda k, im: augment.weak(k, im, cfg))
  strong = jax.jit(lambda k, im: augment.strong(k, im, cfg))
  a, b = weak(jax.random.PRNGKey(1), x), weak(jax.random.PRNGKey(1), x)
  c = weak(jax.random.PRNGKey(2), x)
  s = strong(jax.random.PRNGKey(1), x)
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c) and not np.allclose(a, s)
  for y in (a, c, s):
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
  # Images of one batch get different augmentations.
  same = np.repeat(x[:1], 3, axis=0)
  y = np.asarray(weak(jax.random.PRNGKey(3), same))
  assert not np.allclose(y[0], y[1])
  y = np.asarray(strong(jax.random.PRNGKey(3), same))
  assert not np.allclose(y[0], y[1]) and not np.allclose(y[1], y[2])
  np.testing.assert_array_equal(y, strong(jax.random.PRNGKey(3), same))


def test_unknown_strong_policy_is_named():
  cfg = augment.AugmentConfig(strong="trivialaugment")
  with pytest.raises(ValueError, match="augment.strong='trivialaugment'.*autoaugment"):
    augment.strong(jax.random.PRNGKey(0), _images(), cfg)


def test_normalize_uses_the_given_mean_and_std():
  x = np.full((1, 2, 2, 3), 0.5, np.float32)
  y = np.asarray(augment.normalize(x, (0.5, 0.25, 0.0), (0.5, 0.25, 2.0)))
  np.testing.assert_allclose(y[0, 0, 0], [0.0, 1.0, 0.25])

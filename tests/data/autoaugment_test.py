"""AutoAugment's ImageNet policy: the table, the magnitudes, and how a sub-policy applies.

The ops themselves are checked against PIL in pil_ops_test.py.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from tofa_jax.data import autoaugment

POLICY = autoaugment.IMAGENET_POLICY


def _images(n: int, size: int = 8) -> np.ndarray:
  return np.random.default_rng(0).integers(0, 256, (n, size, size, 3)).astype(np.float32) / 255


def test_imagenet_policy_is_torchvisions_table():
  assert len(POLICY) == 25 and all(len(sub) == 2 for sub in POLICY)
  # Spot entries of torchvision's AutoAugment._get_policies(IMAGENET).
  assert POLICY[0] == (("Posterize", 0.4, 8), ("Rotate", 0.6, 9))
  assert POLICY[18] == (("ShearX", 0.6, 5), ("Equalize", 1.0, None))
  assert POLICY[24] == (("Equalize", 0.8, None), ("Equalize", 0.6, None))
  names = [name for sub in POLICY for name, _, _ in sub]
  assert set(names) == set(autoaugment.OPS)  # every op is drawn; no op is unused
  for name, p, b in itertools.chain(*POLICY):
    assert 0.0 <= p <= 1.0
    takes_magnitude = name not in ("AutoContrast", "Equalize", "Invert")
    assert (b is not None) == takes_magnitude and (b is None or 0 <= b < 10)
  index, prob, magnitude, signed = autoaugment.policy_arrays()
  assert index.shape == prob.shape == magnitude.shape == signed.shape == (25, 2)
  np.testing.assert_allclose(magnitude[0], [4, 30.0])  # Posterize bin 8: 4 bits
  np.testing.assert_array_equal(signed[0], [False, True])


def test_magnitude_bins_are_torchvisions():
  ops = autoaugment.OPS
  np.testing.assert_array_equal(ops["Posterize"][0], [8, 8, 7, 7, 6, 6, 5, 5, 4, 4])
  np.testing.assert_allclose(ops["Solarize"][0] * 255, np.linspace(255, 0, 10))
  np.testing.assert_allclose(ops["Rotate"][0][[0, 3, 9]], [0.0, 10.0, 30.0])
  np.testing.assert_allclose(ops["ShearX"][0][[0, 9]], [0.0, 0.3])
  np.testing.assert_allclose(ops["Color"][0][[0, 9]], [0.0, 0.9])
  signed = {name for name, (_, s) in ops.items() if s}
  assert signed == {"ShearX", "Rotate", "Color", "Contrast", "Sharpness"}


def test_sub_policy_applies_in_order_with_probability_and_random_sign():
  # One forced sub-policy: invert, then rotate by +-30 degrees (the order matters: the
  # black fill of the rotation is not inverted).
  policy = ((("Invert", 1.0, None), ("Rotate", 1.0, 9)),)
  x = _images(1)[0]
  run = jax.jit(lambda k, im, pol: autoaugment.autoaugment_one(k, im, pol), static_argnums=2)
  candidates = [np.asarray(autoaugment.apply_op("Rotate", 1.0 - x, d)) for d in (30.0, -30.0)]
  seen = set()
  for seed in range(8):
    out = np.asarray(run(jax.random.PRNGKey(seed), x, policy))
    match = [np.allclose(out, c, atol=1e-6) for c in candidates]
    assert any(match)
    seen.add(match.index(True))
  assert seen == {0, 1}  # both signs occur
  never = ((("Invert", 0.0, None), ("Rotate", 0.0, 9)),)
  np.testing.assert_array_equal(run(jax.random.PRNGKey(0), x, never), x)


def _candidates(x: np.ndarray) -> list[np.ndarray]:
  """Every image the ImageNet policy can make of x: each sub-policy, each op applied
  or not, each sign."""
  out = []
  for sub in POLICY:
    for applied in itertools.product((False, True), repeat=2):
      for signs in itertools.product((1.0, -1.0), repeat=2):
        y = x
        for (name, _, b), on, sign in zip(sub, applied, signs, strict=True):
          values, signed = autoaugment.OPS[name]
          if on:
            m = 0.0 if b is None else float(values[b]) * (sign if signed else 1.0)
            y = np.asarray(autoaugment.apply_op(name, jnp.asarray(y), m))
        out.append(y)
  return out


def test_every_output_is_one_the_policy_can_make():
  x = _images(1)[0]
  keys = jax.random.split(jax.random.PRNGKey(0), 24)
  outs = np.asarray(jax.jit(jax.vmap(lambda k: autoaugment.autoaugment_one(k, x)))(keys))
  candidates = _candidates(x)
  for out in outs:
    assert any(np.allclose(out, c, atol=1e-5) for c in candidates)
  distinct = {np.round(o, 4).tobytes() for o in outs}
  assert len(distinct) >= 8  # keys give different sub-policies and draws
  assert float(outs.min()) >= 0.0 and float(outs.max()) <= 1.0


def _switch_one(key, img, policy=POLICY):
  """Reference: the policy with `lax.switch` over the per-op functions (`apply_op`),
  drawing as `autoaugment_one` does (its implementation before one op per image)."""
  index, prob, magnitude, signed = (jnp.asarray(a) for a in autoaugment.policy_arrays(policy))
  branches = tuple(functools.partial(autoaugment.apply_op, name) for name in autoaugment.OPS)
  k_sub, k_apply, k_sign = jax.random.split(key, 3)
  sub = jax.random.randint(k_sub, (), 0, len(policy))
  apply = jax.random.uniform(k_apply, (2,)) <= prob[sub]
  flip = jax.random.bernoulli(k_sign, 0.5, (2,)) & signed[sub]
  for j in range(2):
    m = jnp.where(flip[j], -magnitude[sub, j], magnitude[sub, j])
    img = jnp.where(apply[j], jax.lax.switch(index[sub, j], branches, img, m), img)
  return img


def _photos(n: int, h: int = 20, w: int = 27) -> np.ndarray:
  """Continuous values (as after the weak view), some exactly on uint8 levels, and one
  constant image (the degenerate case of autocontrast and equalize)."""
  rng = np.random.default_rng(1)
  x = rng.random((n, h, w, 3), dtype=np.float32)
  x[1::3] = np.round(x[1::3] * 255) / 255
  x[2] = 0.4
  return x


# The enhance blend d + f * (x - d) is a multiply-add, which XLA may contract into one
# FMA in one program and not in another: the two roundings differ by at most the
# product's rounding error plus one rounding of the sum, under 2^-23 for values in [0, 1]
# (a uint8 level is 2^-8). Every other op is the same arithmetic on the same values
# (gathers, lookups, comparisons, one subtraction or division): bit for bit.
FMA_TOLERANCE = 2.0 ** -23


def test_drawn_op_equals_each_op():
  # Every op at every bin, both signs where signed, each image its own op: one
  # program for all of them, against each op's own function.
  cases = [(op, name, s * float(v))
           for op, (name, (values, signed)) in enumerate(autoaugment.OPS.items())
           for v in values for s in ((1.0, -1.0) if signed else (1.0,))]
  x = _photos(len(cases))
  ops = np.asarray([c[0] for c in cases], np.int32)
  mags = np.asarray([c[2] for c in cases], np.float32)
  ours = np.asarray(jax.jit(jax.vmap(autoaugment.drawn_op))(x, ops, mags))
  for name in autoaugment.OPS:
    rows = np.flatnonzero([c[1] == name for c in cases])
    ref = jax.jit(jax.vmap(functools.partial(autoaugment.apply_op, name)))(x[rows], mags[rows])
    atol = FMA_TOLERANCE if name in autoaugment.FAMILIES["enhance"] else 0.0
    np.testing.assert_allclose(ours[rows], ref, rtol=0, atol=atol, err_msg=name)
    assert not np.array_equal(ours[rows], x[rows]), name  # the op did something


def test_autoaugment_equals_a_switch_over_the_ops_under_the_same_key():
  x = _photos(64)
  keys = jax.random.split(jax.random.PRNGKey(7), len(x))
  ours = np.asarray(jax.jit(jax.vmap(autoaugment.autoaugment_one))(keys, x))
  ref = np.asarray(jax.jit(jax.vmap(_switch_one))(keys, x))
  # Bit for bit on XLA:CPU today; the bound allows the enhance ops' FMA contraction.
  np.testing.assert_allclose(ours, ref, rtol=0, atol=FMA_TOLERANCE)
  assert (ours != x).any(axis=(1, 2, 3)).sum() > 32  # most images were changed

"""Hand-written derivatives and the BatchNorm of `elastic_ops` against plain references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tofa_jax.model import elastic_ops as ops

_REFERENCE = {
    "swish": lambda x: x * jax.nn.sigmoid(x),
    "hswish": lambda x: x * jax.nn.relu6(x + 3.0) / 6.0,
}


@pytest.mark.parametrize("name", sorted(_REFERENCE))
def test_activation_value_and_gradient_match_autodiff_of_the_formula(name):
  # Points on both sides of hswish's kinks at -3 and 3, and away from them.
  x = jnp.concatenate([jnp.linspace(-6.0, 6.0, 97), jnp.array([-3.01, -2.99, 2.99, 3.01])])
  ref = _REFERENCE[name]
  np.testing.assert_allclose(ops.activation(name, x), ref(x), rtol=1e-6, atol=1e-7)
  grad = jax.vmap(jax.grad(lambda v: ops.activation(name, v)))(x)
  np.testing.assert_allclose(grad, jax.vmap(jax.grad(ref))(x), rtol=1e-5, atol=1e-6)
  # The backward keeps one tensor per activation (autodiff of the formula keeps
  # two or three): the VJP closes over a single array of x's shape.
  vjp_fn = jax.vjp(lambda v: ops.activation(name, v), x)[1]
  assert [leaf.shape for leaf in jax.tree.leaves(vjp_fn) if leaf.shape == x.shape] == [x.shape]


def test_batch_norm_matches_the_two_pass_formula_on_active_channels():
  x = jax.random.normal(jax.random.key(0), (4, 5, 5, 6)) * 3.0 + 1.5
  scale = jnp.linspace(0.5, 1.5, 6)
  bias = jnp.linspace(-1.0, 1.0, 6)
  mask = ops.channel_mask(4, 6)
  mean0, var0 = jnp.zeros(6), jnp.ones(6)
  y, new_mean, new_var = ops.batch_norm(x, scale, bias, mean0, var0, mask=mask, train=True,
                                        momentum=0.9, eps=1e-5)
  m = x.mean((0, 1, 2))
  v = ((x - m) ** 2).mean((0, 1, 2))
  ref = ((x - m) / jnp.sqrt(v + 1e-5) * scale + bias) * mask
  np.testing.assert_allclose(y, ref, atol=1e-5)
  np.testing.assert_allclose(new_mean, jnp.where(mask > 0, 0.1 * m, 0.0), atol=1e-6)
  np.testing.assert_allclose(new_var, jnp.where(mask > 0, 0.9 + 0.1 * v, 1.0), atol=1e-6)
  y_eval, same_mean, same_var = ops.batch_norm(x, scale, bias, m, v, mask=mask, train=False,
                                               momentum=0.9, eps=1e-5)
  np.testing.assert_allclose(y_eval, ref, atol=1e-5)
  np.testing.assert_array_equal(same_mean, m)
  np.testing.assert_array_equal(same_var, v)


def _count(jaxpr, name):
  n = 0
  for eqn in jaxpr.eqns:
    n += eqn.primitive.name == name
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      n += _count(sub, name)
  return n


def test_synchronised_batch_norm_is_one_all_reduce_each_way_and_exact():
  """Over a named axis (vmap stands in for shard_map), BN reduces its two moments in
  one psum, and the backward in one more; values and gradients equal one BN over
  the whole batch."""
  x = jax.random.normal(jax.random.key(0), (4, 3, 3, 3, 6)) * 2.0 + 0.7
  scale, bias = jnp.linspace(0.5, 1.5, 6), jnp.linspace(-1.0, 1.0, 6)
  mean, var, mask = jnp.full(6, 0.3), jnp.ones(6), ops.channel_mask(5, 6)
  w = jax.random.normal(jax.random.key(1), x.shape)

  def loss(x, scale, w, axis_name):
    y, m, v = ops.batch_norm(x, scale, bias, mean, var, mask=mask, train=True, momentum=0.9,
                             eps=1e-5, axis_name=axis_name)
    return jnp.sum(jnp.sin(y) * w), (m, v)

  grad = jax.value_and_grad(loss, (0, 1), has_aux=True)
  split = jax.vmap(functools.partial(grad, axis_name="d"), (0, None, 0), axis_name="d")
  forward = jax.make_jaxpr(jax.vmap(functools.partial(loss, axis_name="d"), (0, None, 0),
                                    axis_name="d"))(x, scale, w)
  assert _count(forward.jaxpr, "psum") == 1
  assert _count(jax.make_jaxpr(split)(x, scale, w).jaxpr, "psum") == 2
  (_, (m8, v8)), (dx8, dscale8) = split(x, scale, w)
  (_, (m1, v1)), (dx1, dscale1) = grad(x.reshape(12, 3, 3, 6), scale, w.reshape(12, 3, 3, 6),
                                       None)
  np.testing.assert_allclose(m8[0], m1, atol=1e-6)
  np.testing.assert_allclose(v8[0], v1, atol=1e-6)
  np.testing.assert_allclose(dx8.reshape(dx1.shape), dx1, atol=1e-5)
  np.testing.assert_allclose(dscale8.sum(0), dscale1, atol=1e-5)


@pytest.mark.parametrize("offset,bound", [(0.0, 3e-7), (3.0, 3e-6), (10.0, 5e-5), (40.0, 1e-3)])
def test_batch_variance_f32_error_about_the_running_mean(offset, bound):
  """The shifted one-pass variance (shift: the running mean, 0 here) against a
  float64 two-pass reference, for a batch mean `offset` std away from the shift:
  the accuracy stated in `batch_norm`'s docstring."""
  x = np.random.default_rng(0).standard_normal((16, 14, 14, 8)).astype(np.float32) + offset
  _, _, new_var = ops.batch_norm(jnp.asarray(x), jnp.ones(8), jnp.zeros(8), jnp.zeros(8),
                                 jnp.ones(8), mask=jnp.ones(8), train=True, momentum=0.0,
                                 eps=1e-5)
  want = x.astype(np.float64).var((0, 1, 2))
  assert np.max(np.abs(np.asarray(new_var) - want) / want) < bound

"""Hand-written derivatives and the BatchNorm of `elastic_ops` against plain references."""

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

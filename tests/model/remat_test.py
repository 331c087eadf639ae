"""Layers scanned and rematerialised: the same function, less compiled memory."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers.model import images, randomized_variables
from tofa_jax.model import remat, supernet
from tofa_jax.runtime import memory
from tofa_jax.space import arch as A
from tofa_jax.space import sampling
from tofa_jax.space.search_space import StageSpec, get_space


def _grads(model):
  """One program per model: the architecture is an argument, as in training."""
  def loss(p, variables, x, arrays):
    y, new = model.apply({**variables, "params": p}, x, arrays, train=True, resolution=32,
                         mutable=["batch_stats"], rngs={"dropout": jax.random.key(3)})
    return jnp.sum(jnp.sin(y)), (y, new["batch_stats"])
  grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
  return lambda variables, x, arrays: grad(variables["params"], variables, x, arrays)


@pytest.mark.heavy(89)
@pytest.mark.parametrize("name", ["tiny", "tiny_ofa"])
def test_remat_modes_equal_outputs_statistics_and_gradients(name):
  space = get_space(name)
  # Drop-connect on: every mode must draw the same per-layer masks.
  model = supernet.build(space, num_classes=5, dropout_rate=0.2, drop_connect_rate=0.3)
  variables = randomized_variables(model)
  x = images(4, 32)
  programs = {mode: _grads(model.clone(remat=mode)) for mode in ("none", "scan", "layer")}
  for arch in [sampling.max_arch(space), sampling.min_arch(space),
               sampling.sample_arch(space, seed=2, step=1)]:
    arrays = A.to_arrays(space, arch)
    want = programs["none"](variables, x, arrays)
    for mode in ("scan", "layer"):
      got = programs[mode](variables, x, arrays)
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5),
                   got, want)


def test_remat_keeps_the_parameter_tree():
  space = get_space("tiny")
  shapes = {mode: jax.tree.map(lambda a: a.shape, supernet.init_variables(
      supernet.build(space, 5, remat=mode))) for mode in supernet.REMAT}
  assert shapes["scan"] == shapes["none"] and shapes["layer"] == shapes["none"]
  with pytest.raises(ValueError, match=r"train.remat='full' is unknown; choose one of "
                                       r"\['none', 'scan', 'layer'\]"):
    supernet.build(space, 5, remat="full")


def _deep_space():
  tiny = get_space("tiny")
  deep = StageSpec((16, 24), (2, 4, 8), (3, 5), (2.0, 4.0), 1, True, "swish")
  return dataclasses.replace(tiny, name="deep", stages=(*tiny.stages[:2], deep))


def _compiled_gib(model, res=32, n=16):
  space = model.space
  variables = jax.eval_shape(lambda: supernet.init_variables(model, resolution=res))
  arrays = A.to_arrays(space, sampling.max_arch(space))
  x = jax.ShapeDtypeStruct((n, res, res, 3), jnp.float32)

  def loss(p, s, x):
    y, _ = model.apply({"params": p, "batch_stats": s}, x, arrays, train=True,
                       mutable=["batch_stats"])
    return jnp.sum(y ** 2)
  compiled = jax.jit(jax.grad(loss)).lower(variables["params"], variables["batch_stats"],
                                           x).compile()
  return memory.compiled_gib(compiled)


def test_layer_remat_lowers_compiled_memory():
  model = supernet.build(_deep_space(), num_classes=10)
  none, layer = _compiled_gib(model), _compiled_gib(model.clone(remat="layer"))
  assert layer < 0.5 * none, (none, layer)


def test_recompute_equals_the_function_and_holds_in_straight_line_code():
  def block(diff, const):
    (w1, w2), x = diff
    scale, = const
    return x + jnp.tanh(jnp.tanh(x @ w1) @ w2) * scale

  def net(fn, ws, x):
    for w in ws:
      x = fn((w, x), (jnp.float32(0.5),))
    return jnp.sum(x ** 2)

  keys = jax.random.split(jax.random.key(0), 24)
  ws = [(jax.random.normal(keys[2 * i], (128, 1024)) / 12,
         jax.random.normal(keys[2 * i + 1], (1024, 128)) / 32) for i in range(12)]
  x = jax.random.normal(jax.random.key(99), (1024, 128))
  plain = jax.jit(jax.value_and_grad(lambda ws, x: net(block, ws, x), argnums=(0, 1)))
  pinned = jax.jit(jax.value_and_grad(lambda ws, x: net(remat.recompute(block), ws, x),
                                      argnums=(0, 1)))
  # Recomputing reorders float sums: compare to 1e-5 of each array's scale (XLA at
  # -O0, as the tests compile, leaves 2.6e-5 on gradients of magnitude ~10).
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      a, b, rtol=1e-4, atol=1e-5 * max(1.0, float(np.max(np.abs(b))))), pinned(ws, x), plain(ws, x))
  # In line, twelve blocks' 4 MiB hidden activations are kept against one
  # block's at a time (the 0.5 MiB block inputs are kept either way).
  gib = lambda f: memory.compiled_gib(f.lower(ws, x).compile())  # noqa: E731
  assert gib(pinned) < 0.5 * gib(plain), (gib(pinned), gib(plain))

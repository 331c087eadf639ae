"""The masked supernet: elastic invariants, extraction parity, one compile per resolution."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers.compiles import count_compiles
from helpers.model import images, jit_apply, randomized_variables
from tofa_jax.model import static_net, supernet
from tofa_jax.space import arch as A
from tofa_jax.space import sampling
from tofa_jax.space.search_space import get_space

TINY = ["tiny", "tiny_ofa", "tiny_lite"]


def _apply(model, variables, x, arch, train=False):
  arrays = A.to_arrays(model.space, arch)
  if train:
    out, _ = jit_apply(model)(variables, x, arrays, train=True, resolution=arch.resolution,
                         mutable=("batch_stats",))
    return out
  return jit_apply(model)(variables, x, arrays, train=False, resolution=arch.resolution)


def _archs(space, n_random):
  return [sampling.max_arch(space), sampling.min_arch(space)] + [
      sampling.sample_arch(space, seed=11, step=i) for i in range(n_random)]


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("train", [False, True])
def test_masked_equals_extracted_tiny(name, train):
  space = get_space(name)
  model = supernet.build(space, num_classes=5)
  variables = randomized_variables(model)
  x = images(3, 48)
  for arch in _archs(space, 3):
    static, static_vars = static_net.extract(space, arch, variables, 5)
    mutable = ("batch_stats",) if train else False
    want = jit_apply(static)(static_vars, x, train=train, mutable=mutable)
    want = want[0] if train else want
    got = _apply(model, variables, x, arch, train)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0, err_msg=str(arch))


@pytest.mark.parametrize("name", ["tofa", "alphanet", "ofa_mbv3", "lite0"])
def test_masked_equals_extracted_real_spaces(name):
  space = get_space(name)
  # XLA's grouped conv compiles much faster than shift-and-add; the two are
  # compared directly in test_shift_depthwise_matches_xla_grouped_conv.
  model = supernet.build(space, num_classes=10, depthwise_impl="lax")
  res = min(space.resolutions)
  variables = randomized_variables(model, resolution=res)
  x = images(1, res)
  for arch in [sampling.max_arch(space), sampling.sample_arch(space, seed=5, step=0)]:
    arch = dataclasses.replace(arch, resolution=res)
    static, static_vars = static_net.extract(space, arch, variables, 10)
    np.testing.assert_allclose(_apply(model, variables, x, arch), jit_apply(static)(static_vars, x),
                               atol=1e-5, rtol=0, err_msg=str(arch))


def _logits_loss_grads_stats(model, variables, x, labels, arrays):
  """Train-mode logits, loss, parameter gradient and new BN statistics (eval mode
  differs only inside BN, which both paths share)."""
  def loss(params):
    logits, new = model.apply({**variables, "params": params}, x, arrays, train=True,
                              mutable=("batch_stats",))
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return ce, (logits, new["batch_stats"])

  (ce, (logits, stats)), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"])
  return logits, ce, grads, stats


# Seconds measured on the shared 2 cores, a fresh compilation cache.
@pytest.mark.parametrize("name", [pytest.param("tiny", marks=pytest.mark.heavy(55)),
                                  pytest.param("tiny_ofa", marks=pytest.mark.heavy(82)),
                                  pytest.param("tiny_lite", marks=pytest.mark.heavy(33))])
def test_conditional_equals_pure_masking(name):
  """lax.cond/switch (model.conditional=on) and masks (off): the same logits, loss,
  gradients and BN statistics, for subnets that skip layers and pick smaller
  kernels. One program per path (the resolution is fixed)."""
  space = get_space(name)
  cond = supernet.build(space, num_classes=5, conditional=True)
  masked = cond.clone(conditional=False)
  variables = randomized_variables(cond)
  x, labels = images(2, 32), jnp.arange(2) % 5
  archs = [dataclasses.replace(a, resolution=32) for a in _archs(space, 3)]
  skips = any(d < max(st.depths) for a in archs for d, st in zip(a.depth, space.stages,
                                                                  strict=True))
  small = any(k < max(st.kernels) for a in archs
              for ks, st in zip(a.kernel, space.stages, strict=True) for k in ks)
  assert skips and (small or all(len(st.kernels) == 1 for st in space.stages))
  run = jax.jit(_logits_loss_grads_stats, static_argnums=0)
  for arch in archs:
    arrays = A.to_arrays(space, arch)
    want = run(masked, variables, x, labels, arrays)
    got = run(cond, variables, x, labels, arrays)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
      np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=str(arch))


def test_max_arch_equals_plain_network(tiny_model):
  space, model, variables = tiny_model
  arch = sampling.max_arch(space)
  plain = static_net.StaticNet(space, arch, num_classes=7)
  plain_vars = plain.init(jax.random.key(0), images(1, arch.resolution))
  # The plain network has exactly the supernet's max-size shapes...
  _, sliced = static_net.extract(space, arch, variables, 7)
  assert jax.tree.map(jnp.shape, plain_vars) == jax.tree.map(jnp.shape, sliced)
  # ...and with the same weights computes the same function.
  x = images(4, arch.resolution, seed=3)
  np.testing.assert_allclose(
      jit_apply(model)(variables, x, A.to_arrays(space, arch), train=False),
      jit_apply(plain)(sliced, x), atol=1e-5)


def test_inactive_width_channels_are_exactly_zero(tiny_model):
  space, model, variables = tiny_model
  arch = sampling.min_arch(space)
  _, inter = jit_apply(model)(variables, images(2, 32), A.to_arrays(space, arch), train=True,
                         resolution=32, mutable=("batch_stats", "intermediates"),
                         capture_intermediates=True)
  inter = inter["intermediates"]
  assert np.all(np.asarray(inter["stem"]["__call__"][0])[..., arch.width[0]:] == 0)
  for s in range(space.n_stages):
    out = np.asarray(inter[f"stage{s}_layer0"][0])
    assert np.all(out[..., arch.width[s + 1]:] == 0)
    assert np.any(out[..., :arch.width[s + 1]] != 0)


def test_inactive_layers_are_identity(tiny_model):
  space, model, variables = tiny_model
  arch = A.Arch(32, (16, 16, 24, 32, 64), (1, 1, 1), ((5,), (5,), (5,)), ((1.0,), (4.0,), (3.0,)))
  _, inter = jit_apply(model)(variables, images(2, 32), A.to_arrays(space, A.validate(space, arch)),
                         train=False, resolution=32, capture_intermediates=True,
                         mutable=("intermediates",))
  inter = inter["intermediates"]
  for s, st in enumerate(space.stages):
    first = np.asarray(inter[f"stage{s}_layer0"][0])
    for layer in range(1, st.max_depth):
      np.testing.assert_array_equal(inter[f"stage{s}_layer{layer}"][0], first)


def test_small_kernel_uses_centre_of_large_kernel(tiny_model):
  space, model, variables = tiny_model
  arch = A.Arch(32, (16, 16, 24, 32, 64), (2, 3, 2), ((3, 3), (3, 3, 3), (3, 3)),
                ((1.0, 1.0), (4.0,) * 3, (3.0, 3.0)))
  x = images(2, 32)
  before = _apply(model, variables, x, arch)
  # Changing only the outer ring of every 5x5 depthwise kernel leaves k=3 alone.
  ring = np.ones((5, 5, 1, 1), np.float32)
  ring[1:4, 1:4] = 0
  params = jax.tree_util.tree_map_with_path(
      lambda p, v: v + 3.0 * ring if jax.tree_util.keystr(p).endswith("['depthwise']") else v,
      variables["params"])
  after = _apply(model, {**variables, "params": params}, x, arch)
  np.testing.assert_array_equal(before, after)
  arch5 = dataclasses.replace(arch, kernel=((5, 5), (5, 5, 5), (5, 5)))
  assert not np.allclose(_apply(model, variables, x, arch5),
                         _apply(model, {**variables, "params": params}, x, arch5))


def test_input_is_resized_to_the_active_resolution(tiny_model):
  space, model, variables = tiny_model
  arch = sampling.max_arch(space)  # resolution 40
  x = images(2, 64)
  resized = jax.image.resize(x, (2, 40, 40, 3), method="bicubic")
  np.testing.assert_allclose(_apply(model, variables, x, arch),
                             _apply(model, variables, resized, arch), atol=1e-6)


def test_one_compilation_per_resolution(tiny_model):
  space, model, variables = tiny_model
  res = 32
  x, labels = images(4, res), jnp.arange(4) % 7
  archs = [dataclasses.replace(sampling.sample_arch(space, 0, i), resolution=res)
           for i in range(20)]
  assert len(set(archs)) == 20
  arrays = [jax.tree.map(jnp.asarray, A.to_arrays(space, a)) for a in archs]

  @jax.jit
  def forward(v, arch):
    return model.apply(v, x, arch, train=False, resolution=res)

  @jax.jit
  def forward_backward(v, arch):
    def loss(p):
      logits, _ = model.apply({**v, "params": p}, x, arch, train=True, resolution=res,
                              mutable=("batch_stats",))
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return jax.grad(loss)(v["params"])

  with count_compiles() as n_fwd:
    outs = [forward(variables, a) for a in arrays]
    jax.block_until_ready(outs)
  with count_compiles() as n_bwd:
    jax.block_until_ready([forward_backward(variables, a) for a in arrays])
  assert n_fwd[0] == 1 and forward._cache_size() == 1
  assert n_bwd[0] == 1 and forward_backward._cache_size() == 1
  # Distinct archs really ran distinct subnets.
  assert len({np.asarray(o).tobytes() for o in outs}) == 20


def test_dropout_and_drop_connect_come_from_config():
  space = get_space("tiny")
  model = supernet.build(space, num_classes=3, dropout_rate=0.5, drop_connect_rate=0.5)
  variables = randomized_variables(model)
  arrays = A.to_arrays(space, sampling.max_arch(space))
  x = images(4, 40)
  apply = jit_apply(model)
  run = lambda seed: apply(variables, x, arrays, train=True, mutable=("batch_stats",),
                           rngs={"dropout": jax.random.key(seed)})[0]
  assert not np.allclose(run(0), run(1))
  np.testing.assert_array_equal(run(0), run(0))
  no_drop = model.clone(dropout_rate=0.0, drop_connect_rate=0.0)
  np.testing.assert_array_equal(apply(variables, x, arrays, train=False),
                                jit_apply(no_drop)(variables, x, arrays, train=False))


@pytest.mark.parametrize("stride,padding,size,kernel", [
    (1, "symmetric", 8, 5), (2, "symmetric", 9, 5), (2, "same", 8, 5), (2, "same", 9, 5),
    (1, "symmetric", 21, 5), (2, "same", 37, 5), (2, "same", 10, 3), (2, "symmetric", 11, 3),
    (2, "same", 15, 7), (2, "symmetric", 14, 7), (1, "same", 9, 3),
    # several tiles of output columns in the weight gradient (tiles of max(8, k))
    (1, "same", 30, 7), (2, "symmetric", 41, 3)])
def test_shift_depthwise_matches_xla_grouped_conv(stride, padding, size, kernel):
  from tofa_jax.model import elastic_ops as ops

  x = jax.random.normal(jax.random.key(0), (2, size, size, 6))
  w = jax.random.normal(jax.random.key(1), (kernel, kernel, 1, 6))

  def loss(impl):
    return lambda x, w: jnp.sum(jnp.sin(ops.depthwise_conv(x, w, stride, padding, impl)))

  np.testing.assert_allclose(ops.depthwise_conv(x, w, stride, padding, "shift"),
                             ops.depthwise_conv(x, w, stride, padding, "lax"), atol=1e-5)
  for g_shift, g_lax in zip(jax.grad(loss("shift"), (0, 1))(x, w),
                            jax.grad(loss("lax"), (0, 1))(x, w), strict=True):
    np.testing.assert_allclose(g_shift, g_lax, atol=1e-4)


@pytest.mark.parametrize("backend,want", [("gpu", False), ("cuda", False), ("rocm", False),
                                          ("tpu", True), ("cpu", True)])
def test_auto_conditional_is_off_on_gpus_only(monkeypatch, backend, want):
  monkeypatch.setattr(jax, "default_backend", lambda: backend)
  assert supernet.resolve_conditional("auto") is want
  assert supernet.resolve_conditional("on") is True
  assert supernet.resolve_conditional("off") is False


def test_from_config_reads_conditional_and_bn_sync():
  from helpers.configs import tiny_config

  space = get_space("tiny")
  # train.remat=auto is the train loop's to resolve (per program, from the device's memory).
  config = lambda **kw: tiny_config(**{"train.remat": "layer", **kw})  # noqa: E731
  model = supernet.from_config(config(), space, 10)
  assert (model.conditional, model.bn_sync) == (True, "global")  # auto on this CPU
  model = supernet.from_config(config(**{"model.conditional": "off",
                                         "model.bn_sync": "device"}), space, 10)
  assert (model.conditional, model.bn_sync) == (False, "device")
  assert model.clone(axis_name="data").bn_axis_name is None
  assert model.clone(axis_name="data", bn_sync="global").bn_axis_name == "data"
  with pytest.raises(ValueError, match=r"model.conditional='yes' is unknown; choose one of "
                                       r"\['auto', 'on', 'off'\]"):
    supernet.from_config(config(**{"model.conditional": "yes"}), space, 10)
  with pytest.raises(ValueError, match=r"model.bn_sync='local' is unknown; choose one of "
                                       r"\['global', 'device'\]"):
    supernet.build(space, 10, bn_sync="local")

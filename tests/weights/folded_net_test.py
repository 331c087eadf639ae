"""folded_net: BN folded into the convolutions, the subnet as plain lax ops; its logits
equal the StaticNet's in eval mode for every space the project ships."""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
import pytest

from helpers.model import images, jit_apply, randomized_variables
from tofa_jax.model import static_net, supernet
from tofa_jax.space import plan as plan_lib
from tofa_jax.space import sampling
from tofa_jax.space.search_space import SPACE_NAMES, get_space
from tofa_jax.weights import folded_net


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_folded_forward_equals_the_static_net(name):
  # 72 px: odd feature maps (9 px after three stride-2 stages) exercise the pooled
  # shortcut's padding; every stage keeps its layout at any resolution.
  space = dataclasses.replace(get_space(name), resolutions=(72,), mflops_window=None)
  model = supernet.build(space, num_classes=10, depthwise_impl="lax")
  variables = randomized_variables(model, resolution=32)
  x = images(2, 72, seed=4)
  for arch in (sampling.sample_arch(space, seed=3, step=0), sampling.max_arch(space)):
    static, static_vars = static_net.extract(space, arch, variables, 10)
    want = np.asarray(jit_apply(static)(static_vars, x))
    weights = folded_net.fold(space, arch, static_vars)
    got = np.asarray(jax.jit(functools.partial(folded_net.forward, space, arch))(weights, x))
    assert want.std() > 0.05  # logits far from zero, so the comparison means something
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(),
                               err_msg=f"{name}: {arch}")


def test_fold_equals_batch_norm_after_the_convolution():
  kernel = np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4) / 10
  bn_p = {"scale": np.array([1.0, 2.0, 0.5, -1.0]), "bias": np.array([0.1, 0.0, -0.2, 0.3])}
  bn_s = {"mean": np.array([0.5, -1.0, 0.0, 2.0]), "var": np.array([1.0, 4.0, 0.25, 9.0])}
  w, b = folded_net._folded(kernel, bn_p, bn_s, eps=1e-3)
  x = np.array([1.0, -2.0, 0.5], np.float32)
  conv = x @ kernel[0, 0]
  want = (conv - bn_s["mean"]) / np.sqrt(bn_s["var"] + 1e-3) * bn_p["scale"] + bn_p["bias"]
  np.testing.assert_allclose(x @ w[0, 0] + b, want, rtol=1e-6)


@pytest.mark.parametrize("name", ["tofa", "ofa_mbv3", "tiny_lite"])  # shortcut conv, SE, neither
def test_block_shapes_are_the_folded_weights_shapes(name):
  space = get_space(name)
  model = supernet.build(space, num_classes=10, depthwise_impl="lax")
  variables = randomized_variables(model, resolution=32)
  arch = sampling.sample_arch(space, seed=5, step=0)
  _, static_vars = static_net.extract(space, arch, variables, 10)
  weights = folded_net.fold(space, arch, static_vars)
  layers = plan_lib.plan(space, arch)
  want = {k: v.shape for k, v in weights.items() if k.startswith("stage")}
  got = {k: s for lp in layers for k, s in folded_net.block_shapes(space, lp).items()}
  assert got == want and len(got) >= 4 * len(layers)

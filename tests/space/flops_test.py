"""FLOPs/params counts against an independent count of the extracted static model."""

import dataclasses
import functools
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from tofa_jax.model import static_net
from tofa_jax.space import flops, sampling
from tofa_jax.space.search_space import get_space


def _jaxpr_macs(fn, *args) -> int:
  """Multiply-adds of every convolution and matmul in `fn`'s jaxpr."""
  total = 0

  def visit(jaxpr):
    nonlocal total
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "conv_general_dilated":
        lhs, rhs = (v.aval.shape for v in eqn.invars)
        out = eqn.outvars[0].aval.shape
        dn = eqn.params["dimension_numbers"]
        k_spatial = math.prod(rhs[d] for d in dn.rhs_spec[2:])
        in_per_group = rhs[dn.rhs_spec[1]]
        total += math.prod(out) * in_per_group * k_spatial
      elif eqn.primitive.name == "dot_general":
        (contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        total += math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contract)
      for p in eqn.params.values():
        if isinstance(p, jax.extend.core.ClosedJaxpr):
          visit(p.jaxpr)
        elif isinstance(p, jax.extend.core.Jaxpr):
          visit(p)

  visit(jax.make_jaxpr(fn)(*args).jaxpr)
  return total


@pytest.mark.parametrize("name", ["tofa", "alphanet", "ofa_mbv3", "mbv3_large", "lite0", "lite2",
                                  "tiny", "tiny_ofa", "tiny_lite"])
def test_count_equals_static_model_graph(name):
  space = get_space(name)
  for arch in [sampling.max_arch(space), sampling.min_arch(space),
               *(sampling.sample_arch(space, seed=2, step=i) for i in range(3))]:
    model = static_net.StaticNet(space, arch, num_classes=1000)
    x = jnp.zeros((1, arch.resolution, arch.resolution, 3))
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    cost = flops.count(space, arch, num_classes=1000)
    assert cost.macs == _jaxpr_macs(functools.partial(model.apply, images=x), variables), arch
    n_params = sum(math.prod(p.shape) for p in jax.tree.leaves(variables["params"]))
    assert cost.params == n_params, arch


def test_count_within_one_percent_of_xla_cost_analysis():
  space = get_space("tiny_ofa")
  arch = sampling.sample_arch(space, seed=0, step=1)
  model = static_net.StaticNet(space, arch, num_classes=1000)
  x = jnp.zeros((1, arch.resolution, arch.resolution, 3))
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  compiled = jax.jit(lambda v: model.apply(v, x)).lower(variables).compile()
  xla_flops = compiled.cost_analysis()["flops"]
  macs = flops.count(space, arch).macs
  # XLA counts 2 flops per multiply-add plus the elementwise work of BN and
  # activations; the conv/matmul part is the bulk.
  assert 2 * macs <= xla_flops <= 2 * macs * 1.15


def test_known_sizes():
  alphanet = get_space("alphanet")
  assert round(flops.count(alphanet, sampling.min_arch(alphanet)).mflops) == 203
  lite0 = get_space("lite0")
  cost = flops.count(lite0, dataclasses.replace(sampling.max_arch(lite0), resolution=224))
  assert cost.params == 4_652_008  # EfficientNet-Lite0 with the 1000-class head: 4.65 M


def test_cli_prints_mflops_last():
  out = subprocess.run([sys.executable, "-m", "tofa_jax.flops", "--space=tofa", "--arch=min"],
                       check=True, capture_output=True, text=True).stdout.strip().splitlines()
  assert out[-1].startswith("MFLOPs: ")
  expected = flops.count(get_space("tofa"), sampling.min_arch(get_space("tofa"))).mflops
  assert float(out[-1].split()[1]) == pytest.approx(expected, abs=0.01)
  bad = subprocess.run([sys.executable, "-m", "tofa_jax.flops", "--space=tofa", "--arch=huge"],
                       capture_output=True, text=True)
  assert bad.returncode != 0 and "expected max, min, random:SEED" in bad.stderr

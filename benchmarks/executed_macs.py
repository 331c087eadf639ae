"""Executed against nominal multiply-adds of a subnet: what masking the width costs.

  python benchmarks/executed_macs.py --space=ofa_mbv3 --resolution=128 [--batch=2] [--masked]

The supernet runs an elastic width or expansion as a channel mask over max-size
tensors, so a subnet pays for channels it zeroes; depth and kernel size are skipped
or cropped with `lax.cond`/`lax.switch` (`--masked`: masked too). This counts the
multiply-adds the program executes for the max and the min subnet, walking the jaxpr
with the subnet's concrete arrays: at each `cond` only the branch taken, each `scan`
and `while` once per trip, every convolution and dot product counted as (output
elements) x (contraction size). Depthwise convolutions are counted as XLA's grouped
convolution (`depthwise_impl=lax`; the CPU's shift-and-add does the same sums as
elementwise ops). Nominal is `flops.count`, the subnet's own static network.

One line per subnet and pass, per image:

  <subnet> forward: executed=<M> MMACs nominal=<M> MMACs executed/nominal=<x>
  <subnet> forward+backward: executed=<M> MMACs (<x> x its forward)

and the min/max ratios of executed forward and forward+backward.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.extend import core

sys.path.insert(0, ".")

from tofa_jax.model import supernet  # noqa: E402
from tofa_jax.space import arch as arch_lib  # noqa: E402
from tofa_jax.space import flops, sampling, search_space  # noqa: E402

_CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr", "core_call": "call_jaxpr",
          "custom_jvp_call": "call_jaxpr", "custom_vjp_call": "call_jaxpr",
          "custom_vjp_call_jaxpr": "fun_jaxpr", "checkpoint": "jaxpr", "remat": "jaxpr"}


def _macs(eqn, invals) -> int:
  name = eqn.primitive.name
  out = eqn.outvars[0].aval
  if name == "conv_general_dilated":
    rhs = invals[1].shape
    spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, spatial...)
    per_output = int(np.prod([rhs[d] for d in spec[1:]]))
    return int(np.prod(out.shape)) * per_output
  if name == "dot_general":
    (contract, _), _ = eqn.params["dimension_numbers"]
    return int(np.prod(out.shape)) * int(np.prod([invals[0].shape[d] for d in contract]))
  return 0


class Counter:
  """Evaluates a jaxpr op by op on concrete values, summing the MACs it executes."""

  def __init__(self):
    self.macs = 0

  def closed(self, closed_jaxpr, args):
    return self.run(closed_jaxpr.jaxpr, closed_jaxpr.consts, args)

  def run(self, jaxpr, consts, args):
    env = {}

    def read(v):
      return v.val if isinstance(v, core.Literal) else env[v]

    for var, val in zip(jaxpr.constvars, consts, strict=True):
      env[var] = val
    for var, val in zip(jaxpr.invars, args, strict=True):
      env[var] = val
    for eqn in jaxpr.eqns:
      invals = [read(v) for v in eqn.invars]
      outs = self.eqn(eqn, invals)
      if not eqn.primitive.multiple_results:
        outs = [outs]
      for var, val in zip(eqn.outvars, outs, strict=True):
        env[var] = val
    return [read(v) for v in jaxpr.outvars]

  def eqn(self, eqn, invals):
    name, params = eqn.primitive.name, eqn.params
    if name == "cond":
      return self.closed(params["branches"][int(invals[0])], invals[1:])
    if name == "scan":
      return self.scan(params, invals)
    if name == "while":
      return self.while_(params, invals)
    if name in _CALLS and _CALLS[name] in params:
      inner = params[_CALLS[name]]
      if isinstance(inner, core.ClosedJaxpr):
        return self.closed(inner, invals)
      return self.run(inner, [], invals)
    self.macs += _macs(eqn, invals)
    return eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(params))

  def scan(self, params, invals):
    n_c, n_carry, length = params["num_consts"], params["num_carry"], params["length"]
    consts, carry, xs = invals[:n_c], invals[n_c:n_c + n_carry], invals[n_c + n_carry:]
    ys = []
    for i in range(length):
      t = length - 1 - i if params["reverse"] else i
      outs = self.closed(params["jaxpr"], [*consts, *carry, *[x[t] for x in xs]])
      carry, y = outs[:n_carry], outs[n_carry:]
      ys.append(y)
    if params["reverse"]:
      ys.reverse()
    stacked = [jnp.stack(col) for col in zip(*ys, strict=True)] if ys and ys[0] else []
    if not ys:  # zero trips: empty stacks of the body's output shapes
      stacked = [jnp.zeros((0, *a.shape), a.dtype)
                 for a in params["jaxpr"].out_avals[n_carry:]]
    return [*carry, *stacked]

  def while_(self, params, invals):
    n_cc, n_bc = params["cond_nconsts"], params["body_nconsts"]
    cc, bc, val = invals[:n_cc], invals[n_cc:n_cc + n_bc], invals[n_cc + n_bc:]
    while bool(self.closed(params["cond_jaxpr"], [*cc, *val])[0]):
      val = self.closed(params["body_jaxpr"], [*bc, *val])
    return val


def count(fn, *args) -> int:
  closed = jax.make_jaxpr(fn)(*args)
  counter = Counter()
  counter.closed(closed, jax.tree.leaves(args))
  return counter.macs


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--space", default="ofa_mbv3")
  parser.add_argument("--resolution", type=int, default=128)
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--classes", type=int, default=100)
  parser.add_argument("--masked", action="store_true", help="model.conditional off")
  args = parser.parse_args()

  space = search_space.get_space(args.space)
  model = supernet.build(space, args.classes, depthwise_impl="lax",
                         conditional=not args.masked)
  variables = supernet.init_variables(model, 0, args.resolution)
  params, stats = variables["params"], variables["batch_stats"]
  images = jnp.asarray(np.random.default_rng(0).normal(
      size=(args.batch, args.resolution, args.resolution, 3)), jnp.float32)
  labels = jnp.arange(args.batch) % args.classes

  def forward(p, arch):
    logits, _ = model.apply({"params": p, "batch_stats": stats}, images, arch, train=True,
                            resolution=args.resolution, mutable=["batch_stats"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  print(f"space={args.space} res={args.resolution} batch={args.batch} "
        f"mode={'masked' if args.masked else 'conditional'} (MACs per image)")
  got = {}
  for name, arch in (("max", sampling.max_arch(space)), ("min", sampling.min_arch(space))):
    arch = dataclasses.replace(arch, resolution=args.resolution)
    arrays = jax.tree.map(jnp.asarray, arch_lib.to_arrays(space, arch))
    fwd = count(forward, params, arrays) / args.batch / 1e6
    both = count(jax.grad(forward), params, arrays) / args.batch / 1e6
    nominal = flops.count(space, arch, args.classes).macs / 1e6
    got[name] = (fwd, both)
    print(f"{name} forward: executed={fwd:.1f} MMACs nominal={nominal:.1f} MMACs "
          f"executed/nominal={fwd / nominal:.2f}")
    print(f"{name} forward+backward: executed={both:.1f} MMACs ({both / fwd:.2f} x its forward)")
  print(f"min/max executed: forward {got['min'][0] / got['max'][0]:.3f}, "
        f"forward+backward {got['min'][1] / got['max'][1]:.3f}")


if __name__ == "__main__":
  main()

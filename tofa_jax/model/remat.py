"""Rematerialisation that holds on every backend.

`jax.checkpoint` marks what to recompute, but where the recomputation runs is
the compiler's choice. Inside a `lax.scan` body the loop pins it to its
iteration of the backward pass; in straight-line code XLA's CPU scheduler
hoists the recomputation next to the forward pass, and the saving is gone
(a 12-block toy needs 4.43 GiB with or without it).

`recompute(fn)` pins it: the backward pass of `fn` reruns the forward from the
saved inputs only after the output's cotangent exists (an optimisation barrier
ties the inputs to the cotangent), so no schedule can run it early. It is the
same computation as `jax.checkpoint(fn, policy=nothing_saveable)`: only the
inputs are saved.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np


def _zero_cotangent(x):
  x = np.asarray(x) if not isinstance(x, jax.Array) else x
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.extended) or not jax.numpy.issubdtype(
      x.dtype, jax.numpy.inexact):
    return np.zeros(x.shape, jax.dtypes.float0)
  return jax.numpy.zeros_like(x)


def _after(tree, cotangent):
  """`tree`, made to depend on `cotangent` for schedulers that see through
  optimisation barriers (XLA CPU expands them before scheduling): each float
  leaf gets 0 * one element of the cotangent added. Values are unchanged unless
  that element is not finite, in which case the gradient already is not."""
  first = jax.tree.leaves(cotangent)[0].reshape(-1)[0].astype(np.float32) * 0
  return jax.tree.map(
      lambda a: a + first.astype(a.dtype) if jax.numpy.issubdtype(a.dtype, jax.numpy.inexact)
      else a, tree)


def recompute(fn: Callable) -> Callable:
  """`g(diff, const) = fn(diff, const)`, differentiable in `diff` only (the
  cotangent of `const` is zero), whose backward recomputes `fn` from its inputs
  once the output cotangent is known."""

  @jax.custom_vjp
  def g(diff, const):
    return fn(diff, const)

  def fwd(diff, const):
    return fn(diff, const), (diff, const)

  def bwd(saved, cotangent):
    diff, const, cotangent = jax.lax.optimization_barrier((*saved, cotangent))
    diff = _after(diff, cotangent)
    _, vjp = jax.vjp(lambda d: fn(d, const), diff)
    return vjp(cotangent)[0], jax.tree.map(_zero_cotangent, const)

  g.defvjp(fwd, bwd)
  return g

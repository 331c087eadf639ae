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
inputs are saved. Only the activation input is tied (`after`): work on the
weights alone (casts, kernel crops) is weight-sized, so running it early costs
nothing, and tying every weight leaf cost one more kernel per leaf per layer.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def _inexact(x) -> bool:
  return jnp.issubdtype(x.dtype, jnp.inexact)


def _zero_cotangent(x):
  x = x if isinstance(x, jax.Array) else np.asarray(x)
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.extended) or not _inexact(x):
    return np.zeros(x.shape, jax.dtypes.float0)
  return jnp.zeros_like(x)


def after(tree, dependency):
  """`tree`, made to depend on `dependency` for schedulers that see through
  optimisation barriers (XLA CPU expands them before scheduling): each float
  leaf gets 0 * one element of `dependency` added, so nothing computed from
  `tree` can run before `dependency` exists. Values are unchanged unless that
  element is not finite (a non-finite cotangent makes the gradient so anyway)."""
  zero = jax.tree.leaves(dependency)[0].reshape(-1)[0].astype(np.float32) * 0
  return jax.tree.map(lambda a: a + zero.astype(a.dtype) if _inexact(a) else a, tree)


def recompute(fn: Callable) -> Callable:
  """`g(diff, const) = fn(diff, const)` with `diff = (weights, x)`, differentiable
  in `diff` only (the cotangent of `const` is zero), whose backward recomputes `fn`
  from its inputs once the output cotangent is known."""

  @jax.custom_vjp
  def g(diff, const):
    return fn(diff, const)

  def fwd(diff, const):
    return fn(diff, const), (diff, const)

  def bwd(saved, cotangent):
    diff, const, cotangent = jax.lax.optimization_barrier((*saved, cotangent))
    weights, x = diff
    diff = (weights, after(x, cotangent))
    _, vjp = jax.vjp(lambda d: fn(d, const), diff)
    return vjp(cotangent)[0], jax.tree.map(_zero_cotangent, const)

  g.defvjp(fwd, bwd)
  return g

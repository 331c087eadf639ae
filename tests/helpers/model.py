"""Supernet test inputs: non-default variables, a jitted apply, random images."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from tofa_jax.model import supernet


def randomized_variables(model: supernet.Supernet, seed: int = 0,
                         resolution: int | None = None) -> dict:
  """Init variables with BN params/stats moved off their defaults.

  Default BN (scale 1, bias 0, mean 0, var 1) would hide slicing mistakes in
  BN parameters, and identity kernel transforms would hide a missing
  transform; these values keep activations O(1).
  """
  variables = supernet.init_variables(model, seed, resolution)
  flat, treedef = jax.tree_util.tree_flatten_with_path(variables)
  keys = jax.random.split(jax.random.key(seed + 1), len(flat))
  out = []
  for (path, x), key in zip(flat, keys, strict=True):
    name = jax.tree_util.keystr(path[-1:])
    u = jax.random.uniform(key, x.shape)
    if "transform_" in name:
      x = x + 0.1 * jax.random.normal(key, x.shape)
    elif "var" in name or "scale" in name:
      x = 0.5 + u
    elif "mean" in name or "bias" in name:
      x = 0.2 * (u - 0.5)
    out.append(x)
  return jax.tree.unflatten(treedef, out)


@functools.cache
def jit_apply(model):
  """`model.apply` jitted with the Python-valued arguments static.

  Eager (un-jitted) applies would compile every lax.cond/switch anew per call.
  """
  return jax.jit(model.apply, static_argnames=("train", "resolution", "mutable",
                                                "capture_intermediates"))


def images(n: int, size: int, seed: int = 0) -> jax.Array:
  return jax.random.normal(jax.random.key(seed), (n, size, size, 3), jnp.float32)

"""Collectives of the step: one all-reduce per dtype for a whole tree."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def pmean_together(tree: Any, axis: str) -> Any:
  """`lax.pmean(tree, axis)` as one all-reduce per dtype (one flat vector each):
  `pmean` of a tree all-reduces leaf by leaf, hundreds of small latency-bound
  collectives that only some backends combine."""
  leaves, treedef = jax.tree.flatten(tree)
  out = list(leaves)
  for dtype in sorted({x.dtype for x in leaves}, key=str):
    which = [i for i, x in enumerate(leaves) if x.dtype == dtype]
    flat = jax.lax.pmean(jnp.concatenate([leaves[i].reshape(-1) for i in which]), axis)
    parts = jnp.split(flat, np.cumsum([leaves[i].size for i in which])[:-1])
    for i, part in zip(which, parts, strict=True):
      out[i] = part.reshape(leaves[i].shape)
  return jax.tree.unflatten(treedef, out)

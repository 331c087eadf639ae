"""A subnet's training-mode pass inside the step, and the global rows of its images.

Every part of the step (`step.py`, `sandwich.py`) runs the supernet the same way: on
the concatenated views of its batch, rescaled on device (bicubic) to the subnet's
resolution, BatchNorm moments and dropout masks spanning the global batch under
`shard_map` (`global_rows`: each local image's row in it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def global_rows(views: list[jax.Array], axis_name: str | None) -> jax.Array | None:
  """Each local image's row in the global batch `concatenate(views)` (every view
  split evenly over `axis_name`), or None outside `shard_map`."""
  if axis_name is None:
    return None
  device, devices = jax.lax.axis_index(axis_name), jax.lax.axis_size(axis_name)
  rows, start = [], 0
  for v in views:
    n = v.shape[0]
    rows.append(start + device * n + jnp.arange(n))
    start += n * devices
  return jnp.concatenate(rows)


def train_apply(model, variables: dict, views: list[jax.Array], arrays: dict, key: jax.Array,
                resolution: int):
  """(logits, new variables): the subnet `arrays` at `resolution` on the concatenated
  `views` (rows follow the global batch's order), in training mode."""
  return model.apply(variables, jnp.concatenate(views), arrays, train=True,
                     resolution=resolution, mutable=["batch_stats"],
                     rngs={"dropout": key}, rows=global_rows(views, model.axis_name))

"""The data-parallel device mesh and per-process pieces of global batches.

Every process holds its `per_process` share of a global batch; `global_array`
assembles the global array from each process's rows, so one program runs on
1 device, N devices or N hosts alike.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh


def make_mesh(devices: list | None = None) -> Mesh:
  devices = list(jax.devices() if devices is None else devices)
  return jax.make_mesh((len(devices),), ("data",), devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,))


def per_process(n: int) -> int:
  return n // jax.process_count()


def global_array(sharding, local: np.ndarray) -> jax.Array:
  return jax.make_array_from_process_local_data(sharding, local)



def check_batch_divides(name: str, size: int, n_devices: int) -> None:
  if size % n_devices:
    raise ValueError(f"{name}={size} does not divide over {n_devices} devices; use a multiple "
                     f"of {n_devices}")

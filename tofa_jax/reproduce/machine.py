"""`describe()`: one line naming the machine a study result was computed on."""

from __future__ import annotations

import os
import platform

import jax


def describe() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  devices = jax.devices()
  return (f"{cpu}, {os.cpu_count()} cores; JAX {jax.__version__} on {len(devices)} "
          f"{devices[0].platform} device{'s' * (len(devices) > 1)}; Python "
          f"{platform.python_version()}")

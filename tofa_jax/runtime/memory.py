"""Memory figures: what a compiled program needs on its device, and this process's peak.

`compiled_gib` reads XLA's memory analysis of a compiled program: temporaries plus
arguments plus outputs, less the outputs that alias (donated) arguments. It is the
device memory one call needs, known before the program runs.

`device_limit_bytes` is what the backend's allocator may hold on the first local
device (`memory_stats()['bytes_limit']`: GPU and TPU report it, the CPU does not);
`train.remat=auto` compares a program's figure with `HEADROOM` of it.
"""

from __future__ import annotations

import resource
import sys

import jax

# Of the device's limit: the rest holds the batches prefetched and in flight
# (loop.MAX_STEPS_AHEAD) and the evaluation programs, which the step's figure leaves out.
HEADROOM = 0.9


def compiled_gib(compiled) -> float:
  """GiB that one call of `compiled` (`jit(f).lower(...).compile()`) needs."""
  m = compiled.memory_analysis()
  total = (m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
           - m.alias_size_in_bytes)
  return total / 2**30


def device_limit_bytes() -> int | None:
  """Bytes the first local device's allocator may hold, or None where the backend
  does not say (the CPU)."""
  stats = jax.local_devices()[0].memory_stats()
  limit = (stats or {}).get("bytes_limit")
  return int(limit) if limit else None


def peak_rss_gib() -> float:
  """Peak resident memory of this process so far (GiB)."""
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return peak / (2**30 if sys.platform == "darwin" else 2**20)  # bytes on macOS, KiB on Linux

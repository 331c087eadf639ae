"""Memory figures: what a compiled program needs on its device, and this process's peak.

`compiled_gib` reads XLA's memory analysis of a compiled program: temporaries plus
arguments plus outputs, less the outputs that alias (donated) arguments. It is the
device memory one call needs, known before the program runs.
"""

from __future__ import annotations

import resource
import sys


def compiled_gib(compiled) -> float:
  """GiB that one call of `compiled` (`jit(f).lower(...).compile()`) needs."""
  m = compiled.memory_analysis()
  total = (m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
           - m.alias_size_in_bytes)
  return total / 2**30


def peak_rss_gib() -> float:
  """Peak resident memory of this process so far (GiB)."""
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return peak / (2**30 if sys.platform == "darwin" else 2**20)  # bytes on macOS, KiB on Linux

"""The timing rule every latency figure follows.

`median_ms(call, warmup, repeats)`: `warmup` untimed calls (compilation, first
allocations, caches), then the median wall time of `repeats` calls, in
milliseconds. The callable must return only once its work is done (a NumPy
result, or a JAX array after `block_until_ready`). Batch size and thread count
are the caller's (`deploy/runtime_latency.py` fixes and records them).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def check(warmup: int, repeats: int, key: str = "palette.latency_repeats") -> None:
  if repeats < 1:
    raise ValueError(f"{key}={repeats}; use at least 1")
  if warmup < 1:
    raise ValueError(f"{key.rsplit('.', 1)[0]}.latency_warmup={warmup}; use at least 1 "
                     "(the first call compiles or allocates)")


def median_ms(call: Callable[[], object], warmup: int, repeats: int) -> float:
  """Median milliseconds of `call()` over `repeats` timed calls after `warmup` untimed."""
  check(warmup, repeats)
  for _ in range(warmup):
    call()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    call()
    times.append(time.perf_counter() - t0)
  return float(np.median(times)) * 1e3

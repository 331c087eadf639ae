"""Counting the programs JAX compiles, for the no-recompilation tests."""

from __future__ import annotations

import contextlib

import jax

# Emitted once per program that jit lowers and hands to the backend, whether XLA
# compiles it or loads it from the persistent cache (the event times both).
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def count_compiles():
  """Counts programs compiled (or read from the persistent cache) inside the block:
  `with count_compiles() as n`."""
  counter = [0]

  def listener(event: str, *_args, **_kwargs) -> None:
    if event == _COMPILE_EVENT:
      counter[0] += 1

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield counter
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)

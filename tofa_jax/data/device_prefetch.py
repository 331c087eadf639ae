"""Keeps batches placed on the devices ahead of the train step that uses them.

JAX's transfers and dispatches return at once, so pulling an iterator of device
batches `size - 1` items ahead (flax's `jax_utils.prefetch_to_device`, without the
pmap layout) starts the next batch's host work, host-to-device copy and
augmentation while the current step runs.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def prefetch(items: Iterable[T], size: int = 2) -> Iterator[T]:
  """Yields `items` in order, holding up to `size` of them pulled from the source:
  when item i is handed out, items up to i + size - 1 have been produced."""
  if size < 1:
    raise ValueError(f"prefetch size={size}; use at least 1")
  queue: collections.deque[T] = collections.deque()
  source = iter(items)
  for item in source:
    queue.append(item)
    if len(queue) == size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()

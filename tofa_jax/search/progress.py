"""Progress lines of a long search: subnets evaluated so far and time left.

A search evaluates each distinct subnet once (BN recalibration plus a pass over
the validation split, seconds each at the paper's resolutions), and palettes
search several budgets, so a run can take an hour. `SearchProgress` counts the
evaluations through a wrapped fitness function and logs, at most every
`every_s` seconds, how many are done of the most the search can need and the
time that most would take at the mean rate so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class SearchProgress:
  def __init__(self, log: Callable[[str], None], what: str, most: int, every_s: float = 30.0):
    self.log, self.what, self.most, self.every_s = log, what, most, every_s
    self.done = 0
    self.start = self.last = time.perf_counter()

  def wrap(self, fitness: Callable[[T], float]) -> Callable[[T], float]:
    """`fitness`, counted."""
    def counted(arch: T) -> float:
      value = fitness(arch)
      self.done += 1
      now = time.perf_counter()
      if now - self.last >= self.every_s:
        self.last = now
        self.log(self.line(now))
      return value
    return counted

  def line(self, now: float) -> str:
    each = (now - self.start) / max(self.done, 1)
    left = max(self.most - self.done, 0) * each
    return (f"{self.what}: {self.done} of at most {self.most} subnets evaluated, "
            f"{each:.2f} s each, at most {left / 60:.1f} min left")

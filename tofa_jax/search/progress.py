"""Progress lines of a long search: subnets evaluated so far and time left.

A search evaluates each distinct subnet once (BN recalibration plus a pass over
the validation split, seconds each at the paper's resolutions), and palettes
search several budgets, so a run can take an hour. `SearchProgress` counts the
evaluations through a wrapped fitness function and logs, at most every
`every_s` seconds, how many are done of the most the search can need and the
time that most would take at the mean rate so far.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tofa_jax.runtime import progress

T = TypeVar("T")


class SearchProgress:
  def __init__(self, log: Callable[[str], None], what: str, most: int, every_s: float = 30.0):
    self.log, self.what, self.most = log, what, most
    self.done = 0
    self._progress = progress.Progress(most, every_s=every_s)

  def wrap(self, fitness: Callable[[T], float]) -> Callable[[T], float]:
    """`fitness`, counted."""
    def counted(arch: T) -> float:
      value = fitness(arch)
      self.done += 1
      if self._progress.due(self.done):
        self.log(self.line())
      return value
    return counted

  def line(self) -> str:
    rate = self._progress.since_start(self.done)
    return (f"{self.what}: {self.done} of at most {self.most} subnets evaluated, "
            f"{rate.each_s:.2f} s each, at most {rate.left * rate.each_s / 60:.1f} min left")

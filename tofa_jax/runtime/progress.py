"""Progress of a job counted in items (train steps, subnets, layers): its rate, the time
left, and when the next progress line is due.

Training, fine-tuning, the palette's searches and the latency table each print such a
line in their own words; the arithmetic lives here once. Seconds that are not the job's
own (a compile, an evaluation between train steps) are left out of the rate with
`exclude`. tqdm (installed with TFDS) draws bars for a terminal; these lines go to log
files and to tests, one complete line each, so only the numbers are shared.
"""

from __future__ import annotations

import dataclasses
import time


@dataclasses.dataclass(frozen=True)
class Rate:
  """`items` done in `seconds` (excluded seconds left out); `left` items still to do."""

  items: int
  seconds: float
  left: int

  @property
  def per_s(self) -> float:
    """Items per second; 0 before any item or time."""
    return self.items / self.seconds if self.items > 0 and self.seconds > 0 else 0.0

  @property
  def each_s(self) -> float:
    """Seconds per item, over at least one item (so 0 items give the elapsed time)."""
    return self.seconds / max(self.items, 1)

  @property
  def left_s(self) -> float | None:
    """Seconds the `left` items take at this rate; None before any item was done."""
    return None if self.items <= 0 else self.left * self.each_s


class Progress:
  """`total` items, `done` of them before this object was made.

  `since_start(done)` is the mean rate over the whole job; `since_last(done)` the rate
  since its previous call (what training reports: it ignores a slow start). `due(done)`
  says whether a line is due: `every_s` seconds after the previous one, or the last item.
  """

  def __init__(self, total: int, done: int = 0, every_s: float = 0.0):
    self.total, self.every_s = int(total), float(every_s)
    # time.perf_counter is looked up at each call, so a test can patch the clock.
    self.start = self._mark = self._line = time.perf_counter()
    self._start_done = self._mark_done = int(done)
    self._excluded = self._mark_excluded = 0.0

  def exclude(self, seconds: float) -> None:
    """Leave `seconds` (spent since the last call, on something else) out of the rates."""
    self._excluded += seconds
    self._mark_excluded += seconds

  def since_start(self, done: int, now: float | None = None) -> Rate:
    now = time.perf_counter() if now is None else now
    return Rate(done - self._start_done, now - self.start - self._excluded,
                max(self.total - done, 0))

  def since_last(self, done: int, now: float | None = None) -> Rate:
    """The rate since the previous call (or the start); starts a new interval."""
    now = time.perf_counter() if now is None else now
    rate = Rate(done - self._mark_done, now - self._mark - self._mark_excluded,
                max(self.total - done, 0))
    self._mark, self._mark_done, self._mark_excluded = now, done, 0.0
    return rate

  def due(self, done: int, now: float | None = None) -> bool:
    """Whether a line is due at `done` items; if so, the next one is `every_s` later."""
    now = time.perf_counter() if now is None else now
    if now - self._line >= self.every_s or done >= self.total:
      self._line = now
      return True
    return False

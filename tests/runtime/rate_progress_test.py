"""Progress: rates over the whole job and since the last report, excluded seconds left
out, the time left, and a line due every `every_s` seconds and at the last item."""

from __future__ import annotations

import pytest

from tofa_jax.runtime import progress


@pytest.fixture
def clock(monkeypatch):
  now = [1000.0]
  monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
  return now


def test_rates_leave_out_excluded_seconds_and_give_the_time_left(clock):
  prog = progress.Progress(total=100, done=10)
  clock[0] += 60.0  # 10 items in 20 s, and 40 s of something else
  prog.exclude(40.0)
  first = prog.since_last(20)
  assert (first.items, first.seconds, first.left) == (10, 20.0, 80)
  assert (first.per_s, first.each_s, first.left_s) == (0.5, 2.0, 160.0)
  clock[0] += 10.0  # 20 more items, 0.5 s each
  assert prog.since_last(40).per_s == 2.0  # the exclusion belonged to the first interval
  whole = prog.since_start(40)
  assert (whole.items, whole.seconds, whole.left_s) == (30, 30.0, 60 * 1.0)
  empty = prog.since_last(40)  # nothing since the last call
  assert (empty.per_s, empty.left_s) == (0.0, None)


def test_a_line_is_due_every_every_s_and_at_the_last_item(clock):
  prog = progress.Progress(total=5, every_s=30.0)
  due = []
  for done in range(1, 6):
    clock[0] += 20.0
    due.append(prog.due(done))
  # 20 s: no; 40 s: yes; 60 s: 20 s after it, no; 80 s: yes; 100 s: the last item.
  assert due == [False, True, False, True, True]
  assert progress.Progress(total=3, every_s=0.0).due(1)

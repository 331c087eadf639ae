"""Room for compiled programs under Linux's limit on a process's memory maps.

XLA's CPU backend links every kernel of a compiled program into the process with
memory maps of its own: a `tofa`-space train step adds about 12,500 of them. Linux
refuses more than `vm.max_map_count` (65,530 by default) per process, and LLVM then
aborts the whole process ("Unable to allocate section memory"), so five
elastic-resolution programs of the `tofa` space at 192-320 px crash a CPU run at its
fifth compile. `check_room` turns that into an error at the first compile, before
any training, naming both fixes. GPU and TPU programs are not linked into the host
process, so only the CPU backend is checked.
"""

from __future__ import annotations

import os

_MAPS, _LIMIT = "/proc/self/maps", "/proc/sys/vm/max_map_count"
HEADROOM = 0.9  # of the limit; leaves room for evaluation programs and libraries


def count() -> int | None:
  """This process's memory maps, or None where /proc is missing (not Linux)."""
  if not os.path.exists(_MAPS):
    return None
  with open(_MAPS) as f:
    return sum(1 for _ in f)


def limit() -> int | None:
  if not os.path.exists(_LIMIT):
    return None
  with open(_LIMIT) as f:
    return int(f.read())


def shortfall(current: int, per_program: int, programs_left: int, cap: int) -> int | None:
  """The maps `programs_left` more programs would need beyond HEADROOM x `cap`,
  or None when they fit."""
  need = current + per_program * programs_left
  return need - int(HEADROOM * cap) if need > HEADROOM * cap else None


def check_room(added: int, programs_left: int, what: str) -> None:
  """Raises a one-line ValueError when `programs_left` more programs like the one
  that just added `added` maps would pass the limit."""
  current, cap = count(), limit()
  if current is None or cap is None or programs_left <= 0:
    return
  if shortfall(current, added, programs_left, cap) is not None:
    raise ValueError(
        f"{what}: each compiled program adds about {added} memory maps on the CPU backend, "
        f"and {programs_left} more would pass this machine's vm.max_map_count={cap} (the "
        f"process would abort); raise it (sudo sysctl -w vm.max_map_count=262144) or train "
        f"fewer resolutions (model.resolutions)")

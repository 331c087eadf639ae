"""A checkpoint that the disk has no room for: recognised, said in one line, and kept
out of the log.

orbax writes a checkpoint in background threads (tensorstore underneath). When the
disk fills, those threads log the failure with a traceback through absl logging, and
the writes still in flight print one unraisable `Event loop is closed` traceback each
(hundreds of lines in all on a real state); the error reaches the trainer only at the
next `wait_until_finished`, as a `ValueError('RESOURCE_EXHAUSTED: ... No space left on
device [os_error_code=\\'28\\']')`. `QuietNoSpace` and `quiet_unraisable` drop that output
(the trainer says it once, `DiskFull`); `is_no_space` recognises the error wherever it
is chained.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from collections.abc import Callable
from typing import Any

from etils import epath

_MARKS = ("No space left on device", "os_error_code='28'", "[Errno 28]")


def is_no_space(e: BaseException | None) -> bool:
  """Whether `e`, or an exception it was raised from, is a full disk (ENOSPC)."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
      return True
    if any(m in str(e) for m in _MARKS):
      return True
    e = e.__cause__ or e.__context__
  return False


class QuietNoSpace(logging.Filter):
  """Drops log records about a full disk (their message or their exception)."""

  def filter(self, record: logging.LogRecord) -> bool:
    if any(m in record.getMessage() for m in _MARKS):
      return False
    return not (record.exc_info and is_no_space(record.exc_info[1]))


def quiet_unraisable(previous: Callable[[Any], Any]) -> Callable[[Any], Any]:
  """A `sys.unraisablehook` that drops what a failed background write leaves behind and
  hands anything else to `previous`: tensorstore's callbacks for the writes still in flight
  reach orbax's asyncio loop after it closed on the failure, each a `RuntimeError('Event
  loop is closed')` printed with its traceback (dozens per failed save), and a full disk
  itself. The failure that matters reaches the trainer at `wait_until_finished`."""
  def hook(unraisable: Any) -> None:
    e = unraisable.exc_value
    if is_no_space(e) or (isinstance(e, RuntimeError) and str(e) == "Event loop is closed"):
      return
    previous(unraisable)
  return hook


def quiet_thread_errors(previous: Callable[[Any], Any], on_drop: Callable[[BaseException], Any]
                        ) -> Callable[[Any], Any]:
  """A `threading.excepthook` that hands a thread's full disk (a writer thread, such as
  TensorBoard's, dying on it) to `on_drop` instead of printing it, and anything else to
  `previous`."""
  def hook(args: Any) -> None:
    if is_no_space(args.exc_value):
      on_drop(args.exc_value)
    else:
      previous(args)
  return hook


def other_file_message(workdir: str, error: BaseException, previous: int | None) -> str:
  """The one line when a file other than a checkpoint filled the disk."""
  intact = (f"checkpoint step {previous} is intact: free space and rerun the same command to "
            "resume from it" if previous is not None else "there is no checkpoint yet: free "
            "space and rerun the same command to train from the start")
  first = (str(error).strip().splitlines() or [""])[0]
  return f"no space left on device under {workdir} ({first}); {intact}"


class DiskFull(RuntimeError):
  """A checkpoint could not be written for lack of space; the message is the one line."""


def size_on_disk(path: str | os.PathLike) -> int:
  """Bytes of the files under `path` (0 where it does not exist)."""
  total = 0
  for root, _, names in os.walk(path):
    for n in names:
      with contextlib.suppress(OSError):  # removed meanwhile
        total += os.path.getsize(os.path.join(root, n))
  return total


def _mb(n: int) -> str:
  return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def message(step: int, directory: str, previous: int | None, needs: int, needs_from: str,
            free: int | None) -> str:
  """The one line: which checkpoint failed, where, the space it needs, what is intact."""
  room = f"; {_mb(free)} free" if free is not None else ""
  text = (f"checkpoint step {step} could not be written to {directory}: no space left on "
          f"device (a checkpoint needs about {_mb(needs)}, {needs_from}{room}). ")
  if previous is None:
    return text + ("There is no earlier checkpoint: free space and rerun the same command to "
                   "train from the start")
  return text + (f"Checkpoint step {previous} is intact: free space and rerun the same "
                 f"command to resume from it")


def free_bytes(directory: str) -> int | None:
  """Free bytes on the filesystem of `directory` (None for an object store)."""
  try:
    return shutil.disk_usage(directory).free
  except OSError:
    return None


def remove_partial(directory: str, step: int, tmp_suffix: str) -> None:
  """Removes the unfinished files of checkpoint `step` (never committed): the space
  they hold is what the rerun needs."""
  for path in epath.Path(directory).glob(f"{step}{tmp_suffix}*"):
    shutil.rmtree(path, ignore_errors=True)

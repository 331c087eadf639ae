"""One live run per workdir: an exclusive lock on `workdir/LOCK_FILE`.

The lock is an `fcntl.flock` on a file that names its holder (host, pid, start
time). The kernel drops it when the holder dies, kill -9 included, so a lock is
never stale: a second run on a workdir whose holder is alive stops at once with
an error naming that holder; a run that finds the file naming a holder but the
lock free takes it over with a warning (the previous run ended without releasing
it). A clean release empties the file.

Object stores (gs://, s3://) have no locks: there the workdir is not locked, and
multi-host runs lock from process 0 only.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket

LOCK_FILE = "lock"


class WorkdirInUse(ValueError):
  pass


class WorkdirLock:
  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self._file = None

  def acquire(self) -> str | None:
    """Takes the lock; returns a warning line when it took over a dead run's lock."""
    f = open(self.path, "a+")  # noqa: SIM115 - held open for the run's lifetime
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _holder(f)
      f.close()
      holder = holder or "its holder is starting"
      raise WorkdirInUse(f"--workdir={os.path.dirname(self.path)} is in use by a live run "
                         f"({holder}); wait for it or stop it, or choose another --workdir"
                         ) from None
    previous = _holder(f)
    f.seek(0)
    f.truncate()
    f.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                        "started": datetime.datetime.now().isoformat(timespec="seconds")}))
    f.flush()
    self._file = f
    if previous:
      return (f"warning: took over the lock of {self.path}, left by a run that ended "
              f"without releasing it ({previous})")
    return None

  def release(self) -> None:
    if self._file is None:
      return
    self._file.seek(0)
    self._file.truncate()
    self._file.flush()
    fcntl.flock(self._file, fcntl.LOCK_UN)
    self._file.close()
    self._file = None


def _holder(f) -> str:
  """'host H, pid P, since T' from the lock file's content ('' when empty)."""
  f.seek(0)
  text = f.read().strip()
  if not text:
    return ""
  try:
    h = json.loads(text)
    return f"host {h['host']}, pid {h['pid']}, since {h['started']}"
  except (ValueError, KeyError, TypeError):
    return f"unparsable holder record {text[:80]!r}"

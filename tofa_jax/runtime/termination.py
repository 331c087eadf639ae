"""How a run ends: SIGTERM in two phases, interruptible waits, and a prompt exit.

- `SigtermHandler`: until the run has something new to save (its first new step
  dispatched), SIGTERM raises `Terminated` at once, so a preemption notice during
  data loading or a compile (minutes, and nothing to lose) ends the process in
  seconds. Afterwards SIGTERM only sets `raised`; the loop checkpoints and stops.
- `interruptible(fn)`: runs a long C++ call (an XLA compile) in a worker thread
  while the main thread waits in short, signal-aware slices; Python runs signal
  handlers only in the main thread between bytecodes, so without it a SIGTERM
  would wait for the compile to finish.
- `exit_now(message, code)`: the last line on stderr, the distributed client shut
  down (bounded), then `os._exit`. Worker threads of data loaders, thread pools and
  event writers can keep an interpreter alive after an error; a hung process holds
  a pod slice, so an error exits without waiting for them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

EXIT_SIGTERM = 128 + signal.SIGTERM  # the shell's code for "ended by SIGTERM"
SHUTDOWN_TIMEOUT_S = 10.0


class Terminated(Exception):  # noqa: N818 - named for what happened, as KeyboardInterrupt
  """SIGTERM ended the run; the message says what was saved."""


class SigtermHandler:
  """Installed for a run's lifetime; `restore()` puts the previous handler back."""

  def __init__(self, nothing_new: str):
    self.raised = False
    self.nothing_new = nothing_new  # what the message says was kept
    self._at_once = True
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def something_to_save(self) -> None:
    """From now on SIGTERM asks the loop to checkpoint and stop."""
    self._at_once = False

  def _handle(self, signum, frame) -> None:
    del signum, frame
    if self._at_once:
      self._at_once = False  # a second SIGTERM during the unwinding is not raised again
      raise Terminated(f"SIGTERM before the first new step finished: nothing new to save "
                       f"({self.nothing_new}); exiting")
    self.raised = True

  def restore(self) -> None:
    signal.signal(signal.SIGTERM, self._previous)


def interruptible(fn: Callable[[], Any], poll_s: float = 0.2) -> Any:
  """fn() in a daemon thread; the calling (main) thread stays able to run signal
  handlers, and an exception they raise abandons the wait."""
  if threading.current_thread() is not threading.main_thread():
    return fn()
  result: dict[str, Any] = {}

  def run() -> None:
    try:
      result["value"] = fn()
    except BaseException as e:  # noqa: BLE001 - handed to the caller below
      result["error"] = e

  worker = threading.Thread(target=run, name="tofa_jax-interruptible", daemon=True)
  worker.start()
  while worker.is_alive():
    worker.join(poll_s)
  if "error" in result:
    raise result["error"]
  return result["value"]


def _shutdown_distributed() -> None:
  import jax

  with contextlib.suppress(Exception):  # best effort on the way out
    jax.distributed.shutdown()


def exit_now(message: str | None, code: int) -> None:
  """Prints `message` as the last line on stderr and ends the process with `code`."""
  sys.stdout.flush()
  if "jax" in sys.modules:
    closer = threading.Thread(target=_shutdown_distributed, daemon=True)
    closer.start()
    closer.join(SHUTDOWN_TIMEOUT_S)
  if message:
    print(message, file=sys.stderr, flush=True)
  sys.stderr.flush()
  os._exit(code)

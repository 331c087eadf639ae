"""Every exit of `python -m tofa_jax.main` is prompt and ends with one line: a bug, a
non-finite stop, and a SIGTERM that arrives while the step compiles."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import jax
import pytest

from helpers.paths import ROOT
from tofa_jax.runtime import termination

# A hang shows up as this timeout; a prompt exit takes seconds after the event.
EXIT_WITHIN_S = 60


def _main(workdir, config: str, *flags: str) -> list[str]:
  return [sys.executable, "-m", "tofa_jax.main", f"--config={config}", f"--workdir={workdir}",
          *flags]


def _env(cache: bool = True) -> dict[str, str]:
  """The subprocess's environment; `cache` shares the test session's persistent
  compilation cache (tests/conftest.py), so the tiny train step compiles once."""
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
  if cache:
    env.update(JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="2")
  return env


def test_an_uncaught_error_exits_non_zero_with_its_one_line_last(tmp_path):
  r = subprocess.run(_main(tmp_path, "tests/helpers/fault_run_configs.py:crash"),
                     capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=600)
  assert r.returncode == 1
  lines = r.stderr.strip().splitlines()
  assert lines[-1] == "error: RuntimeError: injected failure at step 2"
  assert "Traceback (most recent call last):" in r.stderr  # a bug keeps its traceback


def test_a_non_finite_stop_exits_with_its_message_last(tmp_path):
  r = subprocess.run(_main(tmp_path, "tests/helpers/fault_run_configs.py:nan_loss"),
                     capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=600)
  assert r.returncode == 1
  assert r.stderr.strip().splitlines()[-1] == (
      f"error: loss is nan at step 1; stopping. The last good checkpoint (step 0) is in "
      f"{tmp_path}/checkpoints")


def test_sigterm_while_the_step_compiles_exits_at_once_and_saves_nothing(tmp_path):
  proc = subprocess.Popen(_main(tmp_path, "tests/helpers/tiny_run_config.py"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=_env(cache=False), cwd=ROOT)  # a real compile to interrupt
  try:
    for line in proc.stdout:
      if line.startswith("compiling program"):
        break
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=EXIT_WITHIN_S)
  finally:
    proc.kill()
  assert proc.returncode == termination.EXIT_SIGTERM
  assert stderr.strip().splitlines()[-1] == (
      "SIGTERM before the first new step finished: nothing new to save (nothing trained yet); "
      "exiting")
  assert os.listdir(tmp_path / "checkpoints") == []


def test_the_sigterm_handler_raises_first_then_only_flags():
  handler = termination.SigtermHandler("the newest checkpoint is step 2")
  try:
    with pytest.raises(termination.Terminated, match=r"nothing new to save \(the newest "
                                                     r"checkpoint is step 2\); exiting"):
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(1)  # the handler runs in the main thread between bytecodes
    handler.something_to_save()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.1)
    assert handler.raised
  finally:
    handler.restore()


def test_interruptible_returns_raises_and_can_be_abandoned():
  assert termination.interruptible(lambda: 7) == 7
  with pytest.raises(KeyError, match="inner"):
    termination.interruptible(lambda: {}["inner"])
  handler = termination.SigtermHandler("nothing trained yet")
  released, finished = threading.Event(), threading.Event()

  def compile_():  # a long C++ call: returns only when released
    released.wait(120)
    finished.set()
  try:
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    with pytest.raises(termination.Terminated):
      termination.interruptible(compile_)
    assert not finished.is_set()  # the wait was abandoned, the "compile" still running
  finally:
    released.set()
    handler.restore()

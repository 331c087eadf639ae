"""A full disk during a checkpoint: the run stops there with one line and no traceback,
the previous checkpoint stays intact, and a rerun with space resumes from it."""

from __future__ import annotations

import errno
import logging
import os
import re
import subprocess
import sys
import types

import jax
import pytest

from helpers.paths import ROOT
from tofa_jax.train import checkpointing, disk_full

# orbax 0.12.8 on a full tmpfs: the error `wait_until_finished` raises.
ORBAX_ERROR = ValueError(
    'RESOURCE_EXHAUSTED: Error writing "w/0" in OCDBT database at local file "/fs/w/'
    'checkpoints/4.orbax-checkpoint-tmp/state.orbax-checkpoint-tmp/ocdbt.process_0/": Failed '
    'writing: "/fs/w/checkpoints/4.orbax-checkpoint-tmp/state.orbax-checkpoint-tmp/ocdbt.'
    'process_0/d/00d2": Failed to write 11632 bytes to file 11: No space left on device '
    "[os_error_code='28']")


def test_a_full_disk_is_recognised_wherever_it_is_chained():
  assert disk_full.is_no_space(ORBAX_ERROR)
  assert disk_full.is_no_space(OSError(errno.ENOSPC, "x"))
  try:
    try:
      raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as e:
      raise RuntimeError("save failed") from e
  except RuntimeError as e:
    assert disk_full.is_no_space(e)
  assert not disk_full.is_no_space(OSError(errno.EACCES, "Permission denied"))
  assert not disk_full.is_no_space(ValueError("RESOURCE_EXHAUSTED: out of memory"))
  assert not disk_full.is_no_space(None)


def test_the_flood_is_dropped_and_anything_else_kept():
  quiet = disk_full.QuietNoSpace()
  def record(msg: str, exc: BaseException | None = None) -> logging.LogRecord:
    return logging.LogRecord("absl", logging.ERROR, "f", 1, msg, None,
                             (type(exc), exc, None) if exc else None)
  assert not quiet.filter(record(f"_SignalingThread.run() raised: {ORBAX_ERROR}"))
  assert not quiet.filter(record("Failed to run 4 Handler Commit operations", ORBAX_ERROR))
  assert quiet.filter(record("Failed to run 4 Handler Commit operations",
                             OSError(errno.EACCES, "Permission denied")))
  seen = []
  hook = disk_full.quiet_unraisable(seen.append)
  dropped = [RuntimeError("Event loop is closed"), ORBAX_ERROR]
  kept = RuntimeError("something else")
  for e in [*dropped, kept]:
    hook(types.SimpleNamespace(exc_value=e))
  assert [u.exc_value for u in seen] == [kept]
  seen.clear()
  full = OSError(errno.ENOSPC, "No space left on device")
  dropped = []
  hook = disk_full.quiet_thread_errors(seen.append, dropped.append)
  for e in (full, kept):
    hook(types.SimpleNamespace(exc_value=e))
  assert ([a.exc_value for a in seen], dropped) == ([kept], [full])
  assert disk_full.other_file_message("/w", full, 3) == (
      "no space left on device under /w ([Errno 28] No space left on device); checkpoint step 3 "
      "is intact: free space and rerun the same command to resume from it")


def test_the_line_says_what_failed_where_what_it_needs_and_what_is_intact():
  assert disk_full.message(8, "/w/checkpoints", 4, 12_345_678, "the size of checkpoint step 4",
                           1_200_000) == (
      "checkpoint step 8 could not be written to /w/checkpoints: no space left on device (a "
      "checkpoint needs about 12.3 MB, the size of checkpoint step 4; 1.2 MB free). "
      "Checkpoint step 4 is intact: free space and rerun the same command to resume from it")
  assert disk_full.message(4, "gs://b/w/checkpoints", None, 50_000, "the training state's size",
                           None) == (
      "checkpoint step 4 could not be written to gs://b/w/checkpoints: no space left on device "
      "(a checkpoint needs about 50 kB, the training state's size). There is no earlier "
      "checkpoint: free space and rerun the same command to train from the start")


def _main(workdir, config: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]),
             # the test session's compilation cache (tests/conftest.py): one compile
             JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="2")
  return subprocess.run(
      [sys.executable, "-m", "tofa_jax.main", f"--config={config}", f"--workdir={workdir}",
       "--config.train.steps=4", "--config.train.checkpoint_every=1",
       "--config.evals.subnets=()"],
      capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)


@pytest.mark.heavy(100)
def test_a_full_disk_stops_the_run_in_one_line_and_a_rerun_resumes(tmp_path):
  workdir = str(tmp_path / "run")
  r = _main(workdir, "tests/helpers/fault_run_configs.py:no_space")
  assert r.returncode == 1
  assert "Traceback" not in r.stderr + r.stdout
  directory = os.path.join(workdir, "checkpoints")
  assert re.fullmatch(
      rf"error: checkpoint step 2 could not be written to {re.escape(directory)}: no space left "
      r"on device \(a checkpoint needs about [\d.]+ (MB|kB), the size of checkpoint step 1; "
      r"[\d.]+ (MB|kB) free\)\. Checkpoint step 1 is intact: free space and rerun the same "
      r"command to resume from it\n", r.stderr), r.stderr
  # It stopped at the first step after the failed save: step 4 never trained.
  steps = [int(x.split()[1]) for x in r.stdout.splitlines() if x.startswith("step ")]
  assert steps and max(steps) <= 3
  assert sorted(os.listdir(directory)) == ["1"]  # the unfinished step 2 removed
  ckpt = checkpointing.Checkpointer(workdir, read_only=True)
  try:
    assert ckpt.restore_trained()[0] == 1
  finally:
    ckpt.close()
  r = _main(workdir, "tests/helpers/tiny_run_config.py")  # with space again
  assert r.returncode == 0, r.stderr[-2000:]
  assert "resumed from step 1 of 4" in r.stdout.splitlines()
  assert sorted(os.listdir(directory)) == ["3", "4"]


def test_a_writer_thread_dying_of_a_full_disk_stops_the_run_at_the_next_check(tmp_path):
  # TensorBoard's writer thread, say: it dies, and its queue would block the next write.
  import threading

  ckpt = checkpointing.Checkpointer(str(tmp_path))
  try:
    def write():
      raise OSError(errno.ENOSPC, "No space left on device")
    t = threading.Thread(target=write)
    t.start()
    t.join()
    with pytest.raises(disk_full.DiskFull) as e:
      ckpt.check()
    assert str(e.value) == (
        f"no space left on device under {tmp_path} ([Errno 28] No space left on device); "
        "there is no checkpoint yet: free space and rerun the same command to train from the "
        "start")
    ckpt.check()  # said once
    hook = threading.excepthook
  finally:
    ckpt.close()
  assert threading.excepthook is not hook  # the run's hooks go with its checkpointer

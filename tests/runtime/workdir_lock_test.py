"""One live run per workdir: a second one stops naming the holder; a dead holder's lock
is taken over with a warning; a resume with another space, dataset or class count stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from helpers.configs import tiny_config
from helpers.paths import ROOT
from tofa_jax.runtime import workdir_lock
from tofa_jax.train import loop, run_identity

_HOLD = ("import sys, time; from tofa_jax.runtime.workdir_lock import WorkdirLock; "
         "lock = WorkdirLock(sys.argv[1]); lock.acquire(); print('held', flush=True); "
         "time.sleep(600)")


def _holder(workdir) -> subprocess.Popen:
  proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(workdir)], stdout=subprocess.PIPE,
                          text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
  assert proc.stdout.readline() == "held\n"
  return proc


def test_a_second_run_stops_naming_the_live_holder_then_takes_a_dead_ones_lock(tmp_path):
  holder = _holder(tmp_path)
  try:
    with pytest.raises(workdir_lock.WorkdirInUse) as e:
      loop.train_and_evaluate(tiny_config(), str(tmp_path))  # stops before loading data
    assert str(e.value).startswith(
        f"--workdir={tmp_path} is in use by a live run (host {socket.gethostname()}, pid "
        f"{holder.pid}, since ")
    assert str(e.value).endswith("); wait for it or stop it, or choose another --workdir")
    assert not os.path.exists(tmp_path / "config.json")  # nothing of the holder's touched
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  lock = workdir_lock.WorkdirLock(str(tmp_path))
  warning = lock.acquire()
  assert warning.startswith(f"warning: took over the lock of {tmp_path}/lock, left by a run "
                            f"that ended without releasing it (host {socket.gethostname()}, "
                            f"pid {holder.pid}, since ")
  lock.release()
  assert lock.acquire() is None  # a clean release leaves no holder behind
  lock.release()


@pytest.mark.parametrize("overrides,differ", [
    ({"model.space": "tiny_lite"}, "model.space ('tiny' there, 'tiny_lite' now)"),
    ({"data.name": "mnist5k"}, "data.name ('digits' there, 'mnist5k' now)"),
])
def test_resuming_with_another_space_or_dataset_names_the_keys(tmp_path, overrides, differ):
  workdir = str(tmp_path)
  os.makedirs(os.path.join(workdir, "checkpoints", "2"))  # as if trained
  identity = run_identity.of(tiny_config(), 10)
  run_identity.check_or_record(workdir, identity, resuming=False, write=True)
  key = differ.split(" ")[0]
  with pytest.raises(ValueError) as e:
    run_identity.check_or_record(workdir, run_identity.of(tiny_config(**overrides), 10),
                                 resuming=True, write=True)
  there, now = differ[len(key) + 2:-1].split(" there, ")
  assert str(e.value) == (f"--workdir={workdir} holds a run with other {key} ({key}: {there} "
                          f"there, {now.removesuffix(' now')} now); resume it with its own "
                          "config, or use a new --workdir")


def test_resuming_with_another_class_count_stops_before_training(tmp_path):
  workdir = str(tmp_path)
  run_identity.check_or_record(workdir, run_identity.of(tiny_config(), 7), resuming=False,
                               write=True)
  os.makedirs(os.path.join(workdir, "checkpoints", "2"))
  with pytest.raises(ValueError, match=r"holds a run with other num_classes \(num_classes: 7 "
                                       r"there, 10 now\)"):
    loop.train_and_evaluate(tiny_config(), workdir)  # digits: 10 classes
  assert not os.path.exists(os.path.join(workdir, "config.json"))

"""Multi-host runs as 2 processes x 4 fake CPU devices on 127.0.0.1 (gloo), against
1 process x 2 devices; checkpoints across process/device counts; preemption.

The one-process runs all use 2 devices and one config (`stop_after_steps` and
`checkpoint_every` change no program), so they share one compiled train step through
the persistent cache: the reference, the run that takes over the 2-process
checkpoint, and the preempted and resumed runs. That the step's result does not
depend on the device count is `tests/train/step_test.py::test_eight_devices_equal_one`'s
proof; here the 2 processes (8 devices) are compared with one process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from helpers import xla_env
from helpers.paths import ROOT
from helpers.xla_env import xla_flags
from tofa_jax.train import checkpointing

CONFIG = ["--config=configs/default.py", "--config.model.space=tiny",
          "--config.data.name=digits", "--config.data.num_labelled=50",
          "--config.model.resolutions=(32,)", "--config.data.threads=1",
          "--config.train.steps=12", "--config.train.batch_size=8",
          "--config.train.unlabelled_batch_size=8", "--config.train.log_every=1",
          "--config.train.checkpoint_every=1000", "--config.train.eval_every=0",
          "--config.evals.subnets=()", "--config.optim.warmup_epochs=0",
          "--config.init.checkpoint=random"]


def _env(devices: int, cache: bool = True) -> dict[str, str]:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
             XLA_FLAGS=xla_flags(f"--xla_force_host_platform_device_count={devices}"))
  if cache:  # single-process runs share compiled programs through the persistent cache
    env.update(JAX_COMPILATION_CACHE_DIR=xla_env.CACHE_DIR,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="2")
  return env


def _args(workdir: str, *extra: str) -> list[str]:
  return [sys.executable, "-m", "tofa_jax.main", f"--workdir={workdir}", *CONFIG, *extra]


# Devices of a one-process run. 2, not 8: each fake device is a partition XLA:CPU runs
# on the same 2 cores, and the step's result does not depend on the count.
DEVICES = 2
# train.steps stays 12 (the learning-rate schedule is part of the program); the runs
# stop at STOP: past one pass over the 50 labelled images (8 a step), so the stream
# wraps after a checkpoint is restored (the 2-process run stops at STOP - 2).
STOP = 8


def _run(workdir: str, *extra: str, devices: int = DEVICES) -> None:
  r = subprocess.run(_args(workdir, "--distributed=off", *extra), capture_output=True,
                     text=True, env=_env(devices), cwd=ROOT, timeout=900)
  assert r.returncode == 0, r.stderr[-3000:]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run_two(workdir: str, *extra: str, per_process: tuple = ((), ())
             ) -> list[subprocess.CompletedProcess]:
  """Two processes x 4 devices; `per_process` adds flags to one process only."""
  port = _free_port()
  procs = [subprocess.Popen(
      _args(workdir, "--distributed=on", f"--coordinator_address=127.0.0.1:{port}",
            "--num_processes=2", f"--process_id={i}", *extra, *per_process[i]),
      # No persistent cache: a process that loads its program from it while the other
      # still compiles waits in the first collective past gloo's 30 s deadline.
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(4, cache=False),
      cwd=ROOT)
      for i in range(2)]
  out = []
  try:
    for p in procs:
      stdout, stderr = p.communicate(timeout=900)
      out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
  finally:
    for p in procs:
      p.kill()
  return out


def _trained(workdir: str, step: int) -> dict:
  """Params and BN stats at `step`, restored as NumPy (any device layout saved them)."""
  ckpt = checkpointing.Checkpointer(workdir)
  try:
    with ocp.StandardCheckpointer() as ckptr:
      state = ckptr.restore(os.path.join(workdir, "checkpoints", str(step), "state"),
                            ckpt.host_target(step))
  finally:
    ckpt.close()
  return {"params": state["params"], "batch_stats": state["batch_stats"]}


def _assert_close(a: dict, b: dict) -> None:
  # Same math; only the order of cross-device sums differs.
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-4, atol=2e-5)


@pytest.mark.heavy(170)
def test_two_processes_equal_one_and_checkpoints_move_between_layouts(tmp_path):
  one, two = str(tmp_path / "one"), str(tmp_path / "two")
  half = STOP - 2  # the 2-process run's last step; the labelled stream wraps after it
  _run(one, f"--config.train.checkpoint_every={half}",
       f"--config.train.stop_after_steps={STOP}")  # the reference at steps 6 and 8
  results = _run_two(two, f"--config.train.stop_after_steps={half}")
  for r in results:
    assert r.returncode == 0, r.stderr[-3000:]
  _assert_close(_trained(two, half), _trained(one, half))
  # Only process 0 logs: one line per step, and the console lines once.
  with open(os.path.join(two, "subnets.jsonl")) as f:
    assert len(f.readlines()) == half
  assert f"step {half} " in results[0].stdout and f"step {half} " not in results[1].stdout

  # The 2-process checkpoint (8 devices) restores in one process on 2 devices and
  # training continues; it matches the 1-process run, with the same compiled step
  # (loaded from the persistent cache).
  moved = str(tmp_path / "moved")
  shutil.copytree(two, moved)
  _run(moved, f"--config.train.stop_after_steps={STOP}")
  assert sorted(os.listdir(os.path.join(moved, "checkpoints"))) == sorted([str(half), str(STOP)])
  _assert_close(_trained(moved, STOP), _trained(one, STOP))


@pytest.mark.heavy(94)
def test_sigterm_at_a_random_step_then_resume_equals_uninterrupted(tmp_path):
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  stop = f"--config.train.stop_after_steps={STOP}"
  _run(full, stop)
  # The run may get up to 3 steps past the line `step k` before the signal lands (as
  # before: k < 9 of 12), and must stop before STOP to leave steps to resume.
  k = int(np.random.default_rng().integers(2, STOP - 3))
  proc = subprocess.Popen(_args(split, "--distributed=off", stop), stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, env=_env(DEVICES), cwd=ROOT)
  try:
    for line in proc.stdout:
      if line.startswith(f"step {k} "):
        proc.send_signal(signal.SIGTERM)
        break
    proc.wait(timeout=600)
  finally:
    proc.kill()
  assert proc.returncode == 0
  (stopped,) = [int(s) for s in os.listdir(os.path.join(split, "checkpoints"))]
  assert k <= stopped < STOP, (k, stopped)
  _run(split, stop)
  _assert_close(_trained(split, STOP), _trained(full, STOP))
  with open(os.path.join(split, "subnets.jsonl")) as f:
    assert len(f.readlines()) == STOP


def test_processes_that_would_sample_different_subnets_stop_with_an_error(tmp_path):
  # Subnets are a function of (config, step), so a process with another seed is the way
  # to make them differ; it is caught before any collective could hang.
  results = _run_two(str(tmp_path), per_process=((), ("--config.seed=1",)))
  for r in results:
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == (
        "error: processes [1] run a different config than process 0; start every process "
        "with the same --config and overrides")


def test_cluster_detection_from_the_environment():
  from tofa_jax.runtime import distributed

  assert not distributed.cluster_detected({})
  assert not distributed.cluster_detected({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"})
  assert distributed.cluster_detected({"SLURM_NTASKS": "4", "SLURM_PROCID": "2"})
  assert distributed.cluster_detected({"OMPI_COMM_WORLD_SIZE": "2"})
  assert distributed.cluster_detected({"TPU_WORKER_HOSTNAMES": "10.0.0.2,10.0.0.3"})
  assert not distributed.cluster_detected({"TPU_WORKER_HOSTNAMES": "localhost"})
  assert distributed.cluster_detected({"JAX_COORDINATOR_ADDRESS": "10.0.0.2:1234"})
  assert distributed.initialize("off") is False
  assert distributed.initialize("auto") is False  # no cluster here: a one-process run
  with pytest.raises(ValueError, match=r"--distributed='maybe' is unknown"):
    distributed.initialize("maybe")

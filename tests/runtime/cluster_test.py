"""Two processes on 127.0.0.1 under a fake SLURM step (what srun sets for one task per
GPU), started as main starts them: JAX's own SLURM detection, the GPU each process
would drive, the compilation cache's check for storage every process sees, and JAX's
preemption sync point once the distributed client is up."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from helpers.paths import ROOT
from helpers.xla_env import xla_flags

CHECK = os.path.join(ROOT, "tests", "runtime", "cluster_process_check.py")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _slurm_step(mode: str, tmp_path, devices: int) -> list[dict]:
  """Two tasks of one SLURM step on one node; returns each one's JSON line."""
  port = _free_port()
  procs = []
  for task in range(2):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
               XLA_FLAGS=xla_flags(f"--xla_force_host_platform_device_count={devices}"),
               # What srun sets for each task (JAX reads these five) ...
               SLURM_JOB_ID="4242", SLURM_STEP_NODELIST="127.0.0.1", SLURM_NTASKS="2",
               SLURM_PROCID=str(task), SLURM_LOCALID=str(task),
               # ... and JAX's own override of the port it derives from the job id.
               JAX_COORDINATOR_PORT=str(port))
    for k in ("JAX_COMPILATION_CACHE_DIR", "JAX_COORDINATOR_ADDRESS"):
      env.pop(k, None)
    procs.append(subprocess.Popen(
        [sys.executable, CHECK, mode, str(tmp_path / "shared"), str(tmp_path / f"own{task}")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT))
  out = []
  try:
    for p in procs:
      stdout, stderr = p.communicate(timeout=120)
      assert p.returncode == 0, stderr[-3000:]
      out.append((stdout.splitlines(), stderr))
  finally:
    for p in procs:
      p.kill()
  return out


def test_slurm_tasks_find_each_other_and_each_drives_the_gpu_of_its_local_id(tmp_path):
  devices = 2
  out = _slurm_step("auto", tmp_path, devices)  # main's default --distributed
  seen = [json.loads(lines[-1]) for lines, _ in out]
  every = list(range(2 * devices))
  for task, s in enumerate(seen):
    assert s["started"] is True
    assert (s["process_index"], s["process_count"]) == (task, 2)
    # On a GPU node the CUDA client of task i opens GPU i only; CPU devices ignore it,
    # so each process keeps its fake CPU devices.
    assert s["cuda_visible_devices"] == str(task)
    assert len(s["local_devices"]) == devices
    assert s["gathered"] == [0, 1]
    # The cache is off on CPU; as on a GPU, off for a directory each process names
    # for itself (process 1 cannot see process 0's probe) and on for the shared one.
    assert s["cache_cpu"] is None and s["cache_own"] is None
    assert s["cache_shared"] == s["cache_dir"] == str(tmp_path / "shared")
  # SIGTERM on process 1 at step 3: both reach the sync point at one later step.
  assert seen[0]["preempted_at"] == seen[1]["preempted_at"]
  assert 3 < seen[0]["preempted_at"] < 1000
  assert sorted(seen[0]["devices"]) == sorted(seen[1]["devices"])
  assert len(seen[0]["devices"]) == len(every)
  assert {d for s in seen for d in s["local_devices"]} == set(seen[0]["devices"])
  # Process 0 says once why the cache stays off; its probe files are gone.
  off = [ln for ln in out[0][0] if ln.startswith("persistent compilation cache off")]
  assert off == ["persistent compilation cache off: on CPU each process's programs have "
                 "keys of their own; only process 0 would load them",
                 f"persistent compilation cache off: processes [1] do not see "
                 f"jax_cache_dir={str(tmp_path / 'own0')!r} as process 0 does; set "
                 "--config.jax_cache_dir to storage every host shares (gs://..., a shared "
                 "file system) to load compiled programs after a restart"]
  assert not [ln for ln in out[1][0] if ln.startswith("persistent compilation cache off")]
  assert os.listdir(tmp_path / "shared") == [] and os.listdir(tmp_path / "own0") == []

"""JAX's multi-controller runtime: one process per host, every device in one mesh.

`initialize(mode, ...)` runs `jax.distributed.initialize` before any JAX
computation:
  'on'    always: the coordinator, process count and id come from the arguments,
          the JAX_COORDINATOR_ADDRESS env var, or JAX's own cluster detection
          (a Cloud TPU VM slice through its metadata server, SLURM, Open MPI,
          Kubernetes); launch/tpu_pod.sh passes it;
  'auto'  when a coordinator is given or the environment names a multi-process
          cluster (SLURM with more than one task, Open MPI with more than one
          rank, a GKE TPU slice's TPU_WORKER_HOSTNAMES). A TPU VM slice made with
          gcloud sets no such variable: only its metadata server knows, so it
          needs 'on';
  'off'   never.
Under SLURM, JAX gives each process the GPU numbered SLURM_LOCALID, so a node runs
one task per GPU (launch/slurm_gpu.sbatch). On CPU, cross-process collectives go
through gloo.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import jax
import numpy as np


class ProcessesDisagree(RuntimeError):
  pass


MODES = ("auto", "on", "off")


def cluster_detected(env: dict[str, str] | None = None) -> bool:
  """Whether the environment is a multi-process cluster JAX can configure itself."""
  env = os.environ if env is None else env
  if env.get("JAX_COORDINATOR_ADDRESS"):
    return True
  if int(env.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_PROCID" in env:
    return True
  if int(env.get("OMPI_COMM_WORLD_SIZE", "1") or 1) > 1:
    return True
  hosts = env.get("TPU_WORKER_HOSTNAMES", "")  # set on every worker of a multi-host slice
  if "," in hosts:
    return True
  return bool(env.get("MEGASCALE_COORDINATOR_ADDRESS"))


def initialize(mode: str = "auto", coordinator_address: str | None = None,
               num_processes: int | None = None, process_id: int | None = None) -> bool:
  """Starts the runtime if `mode` asks for it; returns whether it did."""
  if mode not in MODES:
    raise ValueError(f"--distributed={mode!r} is unknown; choose one of {list(MODES)}")
  if mode == "off" or (mode == "auto" and not coordinator_address and not cluster_detected()):
    return False
  # CPU devices' collectives across processes (harmless where GPUs/TPUs do the work).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address or None,
                             num_processes=num_processes, process_id=process_id)
  return True


def check_processes_agree(what: str, payload: Any) -> None:
  """Raises ProcessesDisagree naming the processes whose `payload` differs from
  process 0's (an all-gather of a digest: an error instead of a hang later)."""
  from jax.experimental import multihost_utils

  digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).digest()
  every = np.asarray(multihost_utils.process_allgather(np.frombuffer(digest, np.uint8)))
  differ = [p for p in range(every.shape[0]) if not np.array_equal(every[p], every[0])]
  if differ:
    raise ProcessesDisagree(f"processes {differ} {what} than process 0; start every process "
                            "with the same --config and overrides")

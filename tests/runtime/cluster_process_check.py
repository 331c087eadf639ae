"""One process of a fake cluster: starts the runtime as main does, prints what it sees.

Run under a SLURM-like environment (tests/runtime/cluster_test.py starts two):
`python tests/runtime/cluster_process_check.py MODE SHARED_DIR OWN_DIR`. MODE is
main's --distributed. It prints one JSON line: the process's index and count, its
devices, the GPUs JAX would hand the CUDA plugin, an all-gather of the process
indices (the processes are connected), the persistent compilation cache's
verdict on CPU, and as on a GPU on a directory every process shares and on one of
its own, and the step
at which JAX's preemption sync point stops both after process 1 gets SIGTERM.
"""

import json
import os
import signal
import sys
import time
from unittest import mock

import jax
import numpy as np
from jax.experimental import multihost_utils

from tofa_jax.runtime import compilation_cache, distributed


def main(mode: str, shared: str, own: str) -> None:
  compilation_cache.SEEN_WAIT_S = 1.0  # the own-directory case waits it out; local disk
  started = distributed.initialize(mode)
  gathered = multihost_utils.process_allgather(np.array([jax.process_index()]))
  cpu_verdict = compilation_cache.enable(shared)  # off on CPU: keys differ per process
  with mock.patch.object(jax, "default_backend", return_value="gpu"):  # keys shared
    own_verdict = compilation_cache.enable(own)  # each process names its own directory
    shared_verdict = compilation_cache.enable(shared)
  print(json.dumps({
      "started": started, "process_index": jax.process_index(),
      "process_count": jax.process_count(),
      "local_devices": [d.id for d in jax.local_devices()],
      "devices": [d.id for d in jax.devices()],
      "cuda_visible_devices": jax.config.values["jax_cuda_visible_devices"],
      "gathered": np.asarray(gathered).ravel().tolist(),
      "cache_cpu": cpu_verdict, "cache_own": own_verdict, "cache_shared": shared_verdict,
      "cache_dir": jax.config.jax_compilation_cache_dir,
      "preempted_at": _preempted_at(sigterm_at=3)}), flush=True)


def _preempted_at(sigterm_at: int) -> int | None:
  """The training loop's stop rule on many processes (orbax's reached_preemption
  returns this function's answer): process 1 gets SIGTERM at `sigterm_at`, as from
  a scheduler, and JAX's preemption service, not a Python handler, takes it."""
  for step in range(1000):
    if step == sigterm_at and jax.process_index() == 1:
      os.kill(os.getpid(), signal.SIGTERM)
    if multihost_utils.reached_preemption_sync_point(step):
      return step
    time.sleep(0.02)  # a train step's time: the notice travels in the background
  return None


if __name__ == "__main__":
  main(*sys.argv[1:])

"""Entry point: `python -m tofa_jax.main --config=configs/aircraft.py --workdir=DIR`.

Config values can be overridden on the command line (`--config.train.steps=100`).
Re-running with the same workdir resumes from its latest checkpoint.

The same command runs on one CPU, one GPU, 8 GPUs or a TPU pod slice: with
`--distributed=auto` (the default) JAX's multi-controller runtime starts where
the environment names a multi-process cluster (SLURM, Open MPI, a GKE TPU slice)
or a coordinator is given; `--distributed=on` always starts it, through JAX's
own detection (a Cloud TPU VM slice: launch/tpu_pod.sh) or by hand with
`--coordinator_address`, `--num_processes` and `--process_id`; `off` never
(launch/README.md).
"""

from __future__ import annotations

import sys
import traceback

from absl import flags, logging
from ml_collections import config_flags

from tofa_jax.config import flag_errors

_CONFIG = config_flags.DEFINE_config_file("config", None, "training config file",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for checkpoints and metrics "
                               "(shared storage such as gs:// on multi-host runs)")
_DISTRIBUTED = flags.DEFINE_enum("distributed", "auto", ["auto", "on", "off"],
                                 "start jax.distributed: auto = where the environment names a "
                                 "cluster, on = always (JAX's detection, e.g. TPU VM slices), "
                                 "off = never")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0 (else JAX_COORDINATOR_ADDRESS or "
                                   "cluster detection)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "processes in the run")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  """Runs training; every failure ends the process promptly with one line last on
  stderr (`runtime/termination.exit_now`), never a hang."""
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  import jax

  from tofa_jax.runtime import distributed, termination

  logging.set_verbosity(logging.WARNING)  # orbax and grain log every file at INFO
  try:
    distributed.initialize(_DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value,
                           _PROCESS_ID.value)
  except (ValueError, RuntimeError) as e:
    termination.exit_now(f"error: {e}", 1)
  from tofa_jax.config import plan, validate
  from tofa_jax.train import disk_full, loop

  try:
    validate.training(_CONFIG.value)  # before any data is read or anything compiles
    if jax.process_index() == 0:
      print(plan.describe(_CONFIG.value), flush=True)
    result = loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except termination.Terminated as e:
    termination.exit_now(str(e), termination.EXIT_SIGTERM)
  except (ValueError, loop.NonFiniteLoss, distributed.ProcessesDisagree,
          disk_full.DiskFull) as e:
    termination.exit_now(f"error: {e}", 1)
  except Exception as e:  # noqa: BLE001 - a bug: its traceback, then the one line
    if disk_full.is_no_space(e):  # another file than a checkpoint filled the disk
      termination.exit_now(f"error: no space left on device under {_WORKDIR.value} ({e}); "
                           "free space and rerun the same command to resume from its newest "
                           "checkpoint", 1)
    traceback.print_exc()
    first = (str(e).strip().splitlines() or [""])[0]
    termination.exit_now(f"error: {type(e).__name__}: {first}", 1)
  for k, v in sorted(result.items()):
    print(f"final {k}: {v:.4f}")


if __name__ == "__main__":
  flag_errors.run(main)

"""Entry point: `python -m tofa_jax.main --config=configs/aircraft.py --workdir=DIR`.

Config values can be overridden on the command line (`--config.train.steps=100`).
Re-running with the same workdir resumes from its latest checkpoint.

The same command runs on one CPU, one GPU, 8 GPUs or a TPU pod slice: with
`--distributed=auto` (the default) JAX's multi-controller runtime starts where
JAX detects a multi-process cluster (Cloud TPU pod slice, SLURM, Open MPI) or a
coordinator is given; `--distributed=on` with `--coordinator_address`,
`--num_processes` and `--process_id` starts it by hand (launch/README.md).
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "training config file",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for checkpoints and metrics "
                               "(shared storage such as gs:// on multi-host runs)")
_DISTRIBUTED = flags.DEFINE_enum("distributed", "auto", ["auto", "on", "off"],
                                 "start jax.distributed: auto = on detected clusters")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0 (else JAX_COORDINATOR_ADDRESS or "
                                   "cluster detection)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "processes in the run")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  from tofa_jax.runtime import distributed

  distributed.initialize(_DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value,
                         _PROCESS_ID.value)
  from tofa_jax.train import loop

  logging.set_verbosity(logging.WARNING)  # orbax and grain log every file at INFO
  try:
    result = loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (ValueError, loop.NonFiniteLoss, distributed.ProcessesDisagree) as e:
    sys.exit(f"error: {e}")
  for k, v in sorted(result.items()):
    print(f"final {k}: {v:.4f}")


if __name__ == "__main__":
  app.run(main)

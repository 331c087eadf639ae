"""Entry point: `python -m tofa_jax.main --config=configs/aircraft.py --workdir=DIR`.

Config values can be overridden on the command line (`--config.train.steps=100`).
Re-running with the same workdir resumes from its latest checkpoint.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "training config file",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for checkpoints and metrics")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  from tofa_jax import train

  logging.set_verbosity(logging.WARNING)  # orbax and grain log every file at INFO
  try:
    result = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (ValueError, train.NonFiniteLoss) as e:
    sys.exit(f"error: {e}")
  for k, v in sorted(result.items()):
    print(f"final {k}: {v:.4f}")


if __name__ == "__main__":
  app.run(main)

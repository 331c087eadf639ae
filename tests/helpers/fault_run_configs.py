"""Config files that inject a fault into `python -m tofa_jax.main` runs (with `tests/` on
PYTHONPATH): `--config=tests/helpers/fault_run_configs.py:FAULT`.

A config file runs in the training process before anything trains, so it can patch
the process; each fault leaves the run otherwise as `tiny_config`.
  slow_seal   the write of checkpoint 2 stalls in orbax's background thread (a marker
              file `sealing_2` in the workdir says it started): training goes on, and
              a kill -9 then lands during the save.
  crash       an uncaught RuntimeError in the loop at step 2 (a bug, not a config error).
  nan_loss    the images normalised with std 0: every loss is nan (a valid config
              cannot ask for that).
  no_space    the disk fills while checkpoint 2 is written: its background write (the
              checksums, in orbax's thread) fails with ENOSPC, as any write would.
"""

from __future__ import annotations

import errno
import os
import time

from helpers.configs import tiny_config


def _slow_seal() -> None:
  from tofa_jax.train import checkpointing

  seal = checkpointing.Checkpointer._seal

  def stalled(self) -> None:
    if self._saving == 2:
      open(os.path.join(self.workdir, "sealing_2"), "w").close()
      time.sleep(600)
    seal(self)
  checkpointing.Checkpointer._seal = stalled


def _crash() -> None:
  from tofa_jax.train import metrics

  add = metrics.StepMetrics.add
  calls = [0]

  def failing(self, m) -> None:
    calls[0] += 1
    if calls[0] == 2:
      raise RuntimeError("injected failure at step 2\nsecond line of the message")
    add(self, m)
  metrics.StepMetrics.add = failing


def _nan_loss() -> None:
  from tofa_jax.weights import pretrained

  pretrained.normalization = lambda config: ((0.5,) * 3, (0.0,) * 3)


def _no_space() -> None:
  from tofa_jax.runtime import file_integrity

  seal = file_integrity.seal

  def full(path, **kwargs) -> None:
    if os.path.basename(str(path)).split(".")[0] == "2":
      raise OSError(errno.ENOSPC, "No space left on device")
    seal(path, **kwargs)
  file_integrity.seal = full


def get_config(fault: str):
  {"slow_seal": _slow_seal, "crash": _crash, "nan_loss": _nan_loss,
   "no_space": _no_space}[fault]()
  return tiny_config(**{"train.steps": 4})

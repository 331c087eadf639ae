"""Orbax checkpoints of a training run: state, Omega and data-iterator positions.

One module owns saving and restoring. A checkpoint holds the `TrainState`
(params, batch stats, optimiser state, step, RNG) and a JSON item with the
subnet record Omega and the iterator states. `save` runs every
`checkpoint_every` steps, at the end and on SIGTERM; `restore_latest` resumes.
"""

from __future__ import annotations

import signal
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from tofa_jax.train.subnet_record import is_object_store


class Checkpointer:
  def __init__(self, workdir: str, max_to_keep: int = 2):
    path = epath.Path(workdir) / "checkpoints"
    self.directory = str(path if is_object_store(workdir) else path.absolute())
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, meta: dict) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
    self.manager.wait_until_finished()

  def restore_latest(self, abstract_state: Any) -> tuple[int, Any, dict] | None:
    step = self.manager.latest_step()
    if step is None:
      return None
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    return step, restored["state"], restored["meta"]

  def restore_trained(self) -> tuple[int, dict, dict]:
    """(step, {'params', 'batch_stats'}, meta) of the latest checkpoint, read
    without a target (for tools that do not rebuild the optimiser)."""
    step = self.manager.latest_step()
    if step is None:
      raise ValueError(f"--workdir: no checkpoint in {self.directory}; train first with "
                       "python -m tofa_jax.main")
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(self.host_target(step)),
        meta=ocp.args.JsonRestore()))
    state = restored["state"]
    return step, {"params": state["params"], "batch_stats": state["batch_stats"]}, \
        restored["meta"]

  def host_target(self, step: int) -> Any:
    """NumPy arrays shaped as the saved state: restores on any device layout."""
    with ocp.StandardCheckpointer() as ckptr:
      tree = ckptr.metadata(str(epath.Path(self.directory) / str(step) / "state"))
    return jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), tree.item_metadata.tree)

  def reached_preemption(self, step: int) -> bool:
    """True on every process at the same step once any was told to stop
    (JAX's preemption sync point; False without jax.distributed)."""
    return self.manager.reached_preemption(step)

  def close(self) -> None:
    self.manager.close()


class SigtermFlag:
  """Set by SIGTERM (preemption); the loop checkpoints and exits when it sees it."""

  def __init__(self):
    self.raised = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame) -> None:
    del signum, frame
    self.raised = True

  def restore(self) -> None:
    signal.signal(signal.SIGTERM, self._previous)

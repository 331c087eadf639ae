"""Orbax checkpoints of a training run: state, Omega and data-iterator positions.

One module owns saving and restoring. A checkpoint holds the `TrainState`
(params, batch stats, optimiser state, step, RNG) and a JSON item with the
subnet record Omega and the iterator states.

- Saves are asynchronous (orbax's AsyncCheckpointer): `save` returns once the
  arrays are on the host and training goes on while they are written. `close`
  waits for the last write, so every exit path that closes the checkpointer
  (the loop's `finally`) leaves its saves complete.
- A save the disk has no room for raises `disk_full.DiskFull` (one line: the step,
  the directory, the space needed, the checkpoint that is intact) at the first `check`,
  `save` or `close` after it failed, its unfinished files removed; what orbax's threads
  print about it (log records, unraisable errors: a traceback each) is dropped.
- Every checkpoint is sealed: once orbax has written and finalised it, and
  before it renames the directory into place, `runtime.file_integrity` adds the
  size and SHA-256 of every file. A checkpoint is either complete with its
  checksums or not a checkpoint at all.
- Restoring falls back: the newest checkpoint whose files match their checksums
  and which restores is used; each unreadable newer one is named in one warning
  line. A trainer moves unreadable ones aside (`UNREADABLE_DIR`), never deleting
  or overwriting them; when none is readable it stops and touches nothing.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from orbax.checkpoint.path import atomicity

from tofa_jax.runtime import file_integrity
from tofa_jax.train import disk_full
from tofa_jax.train.step_log import is_object_store

UNREADABLE_DIR = "unreadable_checkpoints"  # under the workdir, beside checkpoints/


class NoReadableCheckpoint(ValueError):
  pass


def _phrase(e: BaseException) -> str:
  """An exception as one short phrase (orbax and tensorstore errors run to pages)."""
  text = " ".join(str(e).split())
  return f"{type(e).__name__}: {text[:240]}{'...' if len(text) > 240 else ''}"


def _warn(text: str) -> None:
  if jax.process_index() == 0:
    print(text, flush=True)


class Checkpointer:
  def __init__(self, workdir: str, max_to_keep: int = 2, read_only: bool = False):
    path = epath.Path(workdir) / "checkpoints"
    self.workdir = str(workdir)
    self.directory = str(path if is_object_store(workdir) else path.absolute())
    self._saving: int | None = None
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=not read_only, read_only=read_only,
        enable_async_checkpointing=True,
        async_options=ocp.AsyncOptions(post_finalization_callback=self._seal))
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_names=("state", "meta"))
    self._finished = None if read_only else self.manager.latest_step()  # the last complete
    self._pending: int | None = None  # a save started and not yet known to have finished
    self._state_bytes = 0
    self._quiet = disk_full.QuietNoSpace()
    logging.getLogger("absl").addFilter(self._quiet)  # orbax logs through absl
    self._unraisable_previous = sys.unraisablehook
    self._unraisable = disk_full.quiet_unraisable(sys.unraisablehook)
    sys.unraisablehook = self._unraisable
    self._thread_previous = threading.excepthook
    self._thread_full: BaseException | None = None  # a writer thread died of a full disk
    self._thread_hook = disk_full.quiet_thread_errors(
        threading.excepthook, lambda e: setattr(self, "_thread_full", e))
    threading.excepthook = self._thread_hook

  def step_dir(self, step: int) -> epath.Path:
    return epath.Path(self.directory) / str(step)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Starts writing checkpoint `step`; returns once the state is copied to the host."""
    self._finish()  # the previous save is sealed before `_saving` moves
    self._saving = self._pending = step
    self._state_bytes = sum(int(getattr(x, "nbytes", 0)) for x in jax.tree.leaves(state))
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

  def check(self) -> None:
    """Raises `DiskFull` once the background save, or another writer thread (TensorBoard's),
    has failed for lack of space; never waits. The save: one process only (several learn
    it together, at the next save or close)."""
    if self._thread_full is not None:
      e, self._thread_full = self._thread_full, None
      raise disk_full.DiskFull(disk_full.other_file_message(self.workdir, e, self._finished))
    if (self._pending is not None and jax.process_count() == 1
        and not self.manager.is_saving_in_progress()):
      self._finish()

  def _finish(self) -> None:
    """Waits for the save in progress; a full disk raises `DiskFull`."""
    try:
      self.manager.wait_until_finished()
    except Exception as e:
      if not disk_full.is_no_space(e) or self._pending is None:
        raise
      failed, self._pending = self._pending, None
      raise self._disk_full(failed) from None
    if self._pending is not None:
      self._finished, self._pending = self._pending, None

  def _disk_full(self, step: int) -> disk_full.DiskFull:
    if jax.process_index() == 0:
      disk_full.remove_partial(self.directory, step, atomicity.TMP_DIR_SUFFIX)
    previous = self._finished
    size = disk_full.size_on_disk(self.step_dir(previous)) if previous is not None else 0
    needs_from = f"the size of checkpoint step {previous}"
    if not size:
      size, needs_from = self._state_bytes, "the training state's size"
    return disk_full.DiskFull(disk_full.message(
        step, self.directory, previous, size, needs_from,
        None if is_object_store(self.workdir) else disk_full.free_bytes(self.directory)))

  def _seal(self) -> None:
    """orbax's post-finalisation callback (its background thread): checksums, written
    into the temporary directory so that they move into place with the checkpoint."""
    if jax.process_index() != 0:
      return
    final = self.step_dir(self._saving)
    tmp = final.parent / (final.name + atomicity.TMP_DIR_SUFFIX)
    # orbax rewrites its step metadata (commit time) after this callback.
    file_integrity.seal(tmp if tmp.exists() else final, skip=("_CHECKPOINT_METADATA",))

  def _read(self, step: int, restore: Callable[[int], Any]) -> tuple[Any, str | None]:
    """(restored, None), or (None, what is wrong with checkpoint `step`)."""
    problem = file_integrity.check(self.step_dir(step))
    if problem is not None:
      return None, problem
    try:
      return restore(step), None
    except Exception as e:  # noqa: BLE001 - any failure to read means: try an older one
      return None, _phrase(e)

  def _newest_readable(self, restore: Callable[[int], Any]) -> tuple[int, Any, list[int]] | None:
    """(step, restored, newer unreadable steps) of the newest readable checkpoint."""
    steps = sorted(self.manager.all_steps(), reverse=True)
    if not steps:
      return None
    bad = []
    for step in steps:
      restored, problem = self._read(step, restore)
      if problem is None:
        return step, restored, bad
      older = "trying an older one" if step != steps[-1] else "no older one"
      _warn(f"warning: checkpoint step {step} in {self.step_dir(step)} cannot be read "
            f"({problem}); {older}")
      bad.append(step)
    raise NoReadableCheckpoint(
        f"no readable checkpoint in {self.directory} (steps {sorted(bad)}); the files are "
        f"left as they are. Move them away to train from the start, or restore a copy")

  def restore_latest(self, abstract_state: Any, check_meta: Callable[[dict], Any] = dict
                     ) -> tuple[int, Any, dict] | None:
    """(step, state, meta) of the newest readable checkpoint, or None when there is none.

    `check_meta` parses the meta item (raising on a bad one) so that a checkpoint
    whose Omega or iterator states are damaged counts as unreadable too. Newer
    unreadable checkpoints are moved to `workdir/UNREADABLE_DIR`, so that saving
    the same steps again overwrites nothing.
    """
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)

    def restore(step: int):
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
      check_meta(restored["meta"])
      return restored["state"], restored["meta"]

    found = self._newest_readable(restore)
    if found is None:
      return None
    step, (state, meta), bad = found
    if bad:
      self._set_aside(bad)
    return step, state, meta

  def restore_trained(self, check_meta: Callable[[dict], Any] = dict) -> tuple[int, dict, dict]:
    """(step, {'params', 'batch_stats'}, meta) of the newest readable checkpoint, read
    without a target (for tools that do not rebuild the optimiser); moves nothing."""
    def restore(step: int):
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(self.host_target(step)),
          meta=ocp.args.JsonRestore()))
      check_meta(restored["meta"])
      state = restored["state"]
      return {"params": state["params"], "batch_stats": state["batch_stats"]}, restored["meta"]

    found = self._newest_readable(restore)
    if found is None:
      raise ValueError(f"--workdir: no checkpoint in {self.directory}; train first with "
                       "python -m tofa_jax.main")
    step, (variables, meta), _ = found
    return step, variables, meta

  def _set_aside(self, steps: list[int]) -> None:
    """Moves unreadable checkpoints out of orbax's sight (process 0; all processes wait)."""
    if jax.process_index() == 0:
      aside = epath.Path(self.workdir) / UNREADABLE_DIR
      aside.mkdir(parents=True, exist_ok=True)
      for step in steps:
        dest, n = aside / str(step), 1
        while dest.exists():
          n += 1
          dest = aside / f"{step}-{n}"
        self.step_dir(step).rename(dest)
        _warn(f"warning: moved the unreadable checkpoint step {step} to {dest} (kept)")
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils

      multihost_utils.sync_global_devices("tofa_jax: unreadable checkpoints set aside")
    self.manager.reload()

  def host_target(self, step: int) -> Any:
    """NumPy arrays shaped as the saved state: restores on any device layout."""
    with ocp.StandardCheckpointer() as ckptr:
      tree = ckptr.metadata(str(self.step_dir(step) / "state"))
    return jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), tree.item_metadata.tree)

  def reached_preemption(self, step: int) -> bool:
    """True on every process at the same step once any was told to stop
    (JAX's preemption sync point; False without jax.distributed)."""
    return self.manager.reached_preemption(step)

  def close(self) -> None:
    """Waits for the last save to be written and sealed, then releases orbax's threads."""
    try:
      self._finish()
    finally:
      self.manager.close()
      logging.getLogger("absl").removeFilter(self._quiet)
      if sys.unraisablehook is self._unraisable:
        sys.unraisablehook = self._unraisable_previous
      if threading.excepthook is self._thread_hook:
        threading.excepthook = self._thread_previous

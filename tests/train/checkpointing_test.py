"""Checkpoints are sealed with checksums, damaged ones are set aside (never deleted) and
the newest readable one resumes; saves are asynchronous and survive a kill -9."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from helpers.configs import tiny_config
from helpers.paths import ROOT
from tofa_jax.runtime import file_integrity
from tofa_jax.train import checkpointing, loop, subnet_record

STEPS = {"train.steps": 4, "train.checkpoint_every": 2, "evals.subnets": ()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> str:
  """A tiny run with checkpoints 2 and 4 (read only: tests copy it)."""
  workdir = str(tmp_path_factory.mktemp("trained"))
  loop.train_and_evaluate(tiny_config(**STEPS), workdir)
  return workdir


def _copy(trained: str, tmp_path) -> str:
  workdir = str(tmp_path / "run")
  shutil.copytree(trained, workdir)
  return workdir


def _hashes(directory: str) -> dict[str, str]:
  out = {}
  for root, _, names in os.walk(directory):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
  return out


def _largest_file(directory: str) -> str:
  files = [os.path.join(r, n) for r, _, ns in os.walk(directory) for n in ns]
  return max(files, key=os.path.getsize)


def _flip_middle(path: str) -> None:
  with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) // 2)
    data = f.read(8)
    f.seek(os.path.getsize(path) // 2)
    f.write(bytes(b ^ 0xFF for b in data))


def _truncate(path: str) -> None:
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _restore_host(workdir: str, step: int) -> dict:
  import orbax.checkpoint as ocp

  ckpt = checkpointing.Checkpointer(workdir, read_only=True)
  try:
    with ocp.StandardCheckpointer() as ckptr:
      return ckptr.restore(os.path.join(workdir, "checkpoints", str(step), "state"),
                           ckpt.host_target(step))
  finally:
    ckpt.close()


def test_every_checkpoint_is_sealed_and_its_manifest_lists_every_array_file(trained):
  for step in (2, 4):
    directory = os.path.join(trained, "checkpoints", str(step))
    assert file_integrity.check(directory) is None
    with open(os.path.join(directory, file_integrity.MANIFEST)) as f:
      listed = set(json.load(f)["files"])
    # orbax writes these two after finalising: its commit time and its commit marker.
    on_disk = set(_hashes(directory)) - {file_integrity.MANIFEST, "_CHECKPOINT_METADATA",
                                         "commit_success.txt"}
    assert listed == on_disk and any(name.startswith("state/") for name in listed)


DAMAGE = {
    "8 bytes flipped in the largest file": lambda d: _flip_middle(_largest_file(d)),
    "the meta JSON truncated": lambda d: _truncate(os.path.join(d, "meta", "metadata")),
    "a file missing": lambda d: os.remove(_largest_file(os.path.join(d, "state"))),
    "the manifest truncated": lambda d: _truncate(os.path.join(d, file_integrity.MANIFEST)),
    # No manifest (a checkpoint from before checksums): orbax's own read error decides.
    "unsealed, its array data truncated": lambda d: (
        os.remove(os.path.join(d, file_integrity.MANIFEST)),
        _truncate(_largest_file(os.path.join(d, "state")))),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_latest_checkpoint_is_set_aside_and_the_previous_one_restores(
    trained, tmp_path, capsys, damage):
  workdir = _copy(trained, tmp_path)
  latest = os.path.join(workdir, "checkpoints", "4")
  DAMAGE[damage](latest)
  damaged = _hashes(latest)
  target = jax.tree.map(np.asarray, _restore_host(trained, 2))
  ckpt = checkpointing.Checkpointer(workdir)
  try:
    step, state, meta = ckpt.restore_latest(target)
    assert ckpt.manager.all_steps() == [2]
  finally:
    ckpt.close()
  assert step == 2 and "omega" in meta
  for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(target), strict=True):
    np.testing.assert_array_equal(np.asarray(x), y)
  out = capsys.readouterr().out.splitlines()
  assert out[0].startswith(f"warning: checkpoint step 4 in {latest} cannot be read (")
  assert out[0].endswith("); trying an older one")
  aside = os.path.join(workdir, checkpointing.UNREADABLE_DIR, "4")
  assert out[1] == f"warning: moved the unreadable checkpoint step 4 to {aside} (kept)"
  assert _hashes(aside) == damaged  # moved whole, not repaired, not deleted


def test_no_readable_checkpoint_stops_in_one_line_and_touches_nothing(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  for step in (2, 4):
    _flip_middle(_largest_file(os.path.join(workdir, "checkpoints", str(step))))
  before = _hashes(workdir)
  with pytest.raises(checkpointing.NoReadableCheckpoint) as e:
    loop.train_and_evaluate(tiny_config(**STEPS), workdir)
  message = str(e.value)
  assert "\n" not in message
  assert message == (f"no readable checkpoint in {workdir}/checkpoints (steps [2, 4]); the "
                     "files are left as they are. Move them away to train from the start, or "
                     "restore a copy")
  after = _hashes(workdir)
  assert {k: v for k, v in after.items() if k.startswith("checkpoints")} == {
      k: v for k, v in before.items() if k.startswith("checkpoints")}


def test_a_resume_past_a_damaged_checkpoint_equals_the_uninterrupted_run(
    trained, tmp_path, capsys):
  workdir = _copy(trained, tmp_path)
  _flip_middle(_largest_file(os.path.join(workdir, "checkpoints", "4")))
  loop.train_and_evaluate(tiny_config(**STEPS), workdir)
  out = capsys.readouterr().out.splitlines()
  assert "resumed from step 2 of 4" in out
  a, b = _restore_host(trained, 4), _restore_host(workdir, 4)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
  assert sorted(os.listdir(os.path.join(workdir, checkpointing.UNREADABLE_DIR))) == ["4"]


@pytest.mark.parametrize("damage", ["truncated meta", "unsealed, Omega not JSON"])
def test_tools_reading_a_damaged_workdir_fall_back_and_move_nothing(
    trained, tmp_path, capsys, damage):
  workdir = _copy(trained, tmp_path)
  latest = os.path.join(workdir, "checkpoints", "4")
  if damage == "truncated meta":
    _truncate(os.path.join(latest, "meta", "metadata"))
  else:  # valid JSON that only the palette's parse of Omega rejects
    os.remove(os.path.join(latest, file_integrity.MANIFEST))
    with open(os.path.join(latest, "meta", "metadata"), "w") as f:
      json.dump({"omega": "[{", "labelled_iterator": "", "unlabelled_iterator": ""}, f)
  before = _hashes(workdir)
  ckpt = checkpointing.Checkpointer(workdir, read_only=True)
  try:  # as the palette reads it (search/palette.py)
    step, variables, meta = ckpt.restore_trained(
        check_meta=lambda m: subnet_record.SubnetRecord.from_state(m["omega"]))
  finally:
    ckpt.close()
  assert step == 2 and set(variables) == {"params", "batch_stats"} and "omega" in meta
  assert capsys.readouterr().out.startswith(f"warning: checkpoint step 4 in {latest} cannot "
                                            "be read (")
  assert _hashes(workdir) == before


def test_a_kill_during_an_asynchronous_save_then_resume_equals_the_uninterrupted_run(
    trained, tmp_path):
  workdir = str(tmp_path / "killed")
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]),
             # the test session's compilation cache (tests/conftest.py): no second compile
             JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="2")
  proc = subprocess.Popen(
      [sys.executable, "-m", "tofa_jax.main",
       "--config=tests/helpers/fault_run_configs.py:slow_seal", f"--workdir={workdir}",
       "--config.train.checkpoint_every=2", "--config.evals.subnets=()"],
      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
  try:
    for line in proc.stdout:
      if line.startswith("step 3 "):
        break
    # Step 3 trained while checkpoint 2 was still being written (its write stalls).
    assert line.startswith("step 3 ")
    assert not os.path.exists(os.path.join(workdir, "checkpoints", "2"))
    marker = os.path.join(workdir, "sealing_2")
    for _ in range(600):
      if os.path.exists(marker):
        break
      time.sleep(0.2)
    assert os.path.exists(marker)
    proc.send_signal(signal.SIGKILL)  # during the save of checkpoint 2
    proc.wait(timeout=60)
  finally:
    proc.kill()
  assert not os.path.exists(os.path.join(workdir, "checkpoints", "2"))  # never committed
  loop.train_and_evaluate(tiny_config(**STEPS), workdir)
  a, b = _restore_host(trained, 4), _restore_host(workdir, 4)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)

"""The study's runs on disk: each training run and each palette run once, resumable.

A training run lives in `ROOT/runs/<arm>/seed<k>/` (a normal workdir: checkpoints,
config.json, subnets.jsonl) and is done when its `result.json` exists; a study that
stops part-way resumes there (the trainer resumes an unfinished run from its last
checkpoint). A palette run's report is kept as `ROOT/palettes/<name>.json`, because
every palette run on a workdir rewrites `WORKDIR/palette/`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
from collections.abc import Callable
from typing import Any

import ml_collections

from tofa_jax.config import validate
from tofa_jax.runtime import termination
from tofa_jax.search import palette
from tofa_jax.train import checkpointing, loop, step_log


def _read(path: str) -> dict[str, Any] | None:
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


def fingerprint(config: ml_collections.ConfigDict) -> str:
  """A digest of every key and value of `config`: a result is reused only for the same."""
  text = json.dumps(config.to_dict(), sort_keys=True, default=repr)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def _reuse(path: str, config: ml_collections.ConfigDict) -> dict[str, Any] | None:
  """The result at `path` if it was computed from `config`; an error naming the file if
  it was computed from another config (the study's settings changed under it)."""
  done = _read(path)
  if done is not None and done.get("config") != fingerprint(config):
    raise ValueError(f"{path} was computed with another config than the study's now; use a "
                     "new --workdir (or move that result away to recompute it)")
  return done


def _write(path: str, value: dict[str, Any]) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=1)
  os.replace(tmp, path)  # a crash never leaves a half-written result


class Runs:
  """Runs (or reads back) the study's training and palette runs under `root`."""

  def __init__(self, root: str, log: Callable[[str], None] = print):
    self.root, self.log = root, log
    self.trained = 0  # runs trained by this process (the rest were read back)

  def workdir(self, arm: str, seed: int) -> str:
    return os.path.join(self.root, "runs", arm, f"seed{seed}")

  def _once(self, path: str, config: ml_collections.ConfigDict, what: str,
            compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`compute()` with its wall time and the config's fingerprint, kept at `path`; or
    what an earlier invocation kept there for the same config. The wall time includes
    earlier invocations that stopped part-way (SIGTERM, an error), kept meanwhile in
    `path`.spent; a killed process's share is lost."""
    done = _reuse(path, config)
    if done is not None:
      return done
    self.log(what)
    spent_path = path + ".spent"
    spent = float((_read(spent_path) or {}).get("seconds", 0.0))
    start = time.perf_counter()
    try:
      result = compute()
    except BaseException:
      _write(spent_path, {"seconds": spent + time.perf_counter() - start})
      raise
    result.update(seconds=spent + time.perf_counter() - start, config=fingerprint(config))
    _write(path, result)
    if os.path.exists(spent_path):
      os.remove(spent_path)
    return result

  def train(self, arm: str, seed: int, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """{'top1_<subnet>': ..., 'seconds': ...} of the arm's run at `seed`."""
    workdir = self.workdir(arm, seed)

    def compute() -> dict[str, Any]:
      validate.training(config)
      metrics = loop.train_and_evaluate(config, workdir)
      if not metrics:  # no final evaluation: stopped by SIGTERM, or finished before
        ckpt = checkpointing.Checkpointer(workdir)
        try:
          step, total = ckpt.latest_step() or 0, int(config.train.steps)
        finally:
          ckpt.close()
        if step < total:
          raise termination.Terminated(
              f"SIGTERM: {arm} (seed {seed}) stopped at step {step} of {total}, checkpoint kept "
              f"in {workdir}; run the study again to resume it")
        raise ValueError(f"{workdir} holds a finished run without its result.json; move it "
                         "away to train it again")
      self.trained += 1
      return {k: float(v) for k, v in metrics.items()}

    return self._once(os.path.join(workdir, "result.json"), config,
                      f"study: training {arm} (seed {seed}) in {workdir}", compute)

  def logged(self, arm: str, seed: int, key: str) -> float | None:
    """The mean of training scalar `key` (e.g. 'train/mask_rate') over the log lines
    of the arm's run at `seed` (its workdir's metrics.jsonl); None if never logged."""
    rows = step_log.StepLog(os.path.join(self.workdir(arm, seed), "metrics.jsonl")).read()
    values = [float(r[key]) for r in rows if key in r]
    return sum(values) / len(values) if values else None

  def palette(self, name: str, config: ml_collections.ConfigDict, workdir: str
              ) -> dict[str, Any]:
    """The report (palette.json's content) of a palette run named `name` on `workdir`."""
    def compute() -> dict[str, Any]:
      validate.palette(config)
      return palette.run(config, workdir, log=self.log)  # its phases and search progress

    return self._once(os.path.join(self.root, "palettes", f"{name}.json"), config,
                      f"study: palette {name} on {workdir}", compute)

  def keep(self, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`compute()`'s result, computed once and kept as `ROOT/results/<name>.json`."""
    path = os.path.join(self.root, "results", f"{name}.json")
    done = _read(path)
    if done is None:
      start = time.perf_counter()
      done = compute()
      done["seconds"] = time.perf_counter() - start
      _write(path, done)
    return done

  def compute_seconds(self) -> float:
    """The seconds every result kept under the root took to compute, whichever
    invocation computed it: the study's cost, however many times it was resumed."""
    kept = [os.path.join(self.root, *parts) for parts in (
        ("runs", "*", "*", "result.json"), ("palettes", "*.json"), ("results", "*.json"))]
    return sum(float((_read(path) or {}).get("seconds", 0.0))
               for pattern in kept for path in glob.glob(pattern))

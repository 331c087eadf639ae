"""The study's runs on disk: each training run and each palette run once, resumable.

A training run lives in `ROOT/runs/<arm>/seed<k>/` (a normal workdir: checkpoints,
config.json, subnets.jsonl) and is done when its result is kept; a study that stops
part-way resumes there (the trainer resumes an unfinished run from its last
checkpoint). What the tables read is kept apart from the workdirs, in `KEPT` (ROOT
unless told otherwise), as small JSON files: `runs/<arm>/seed<k>/result.json` and the
run's `metrics.jsonl`, `palettes/<name>.json` (a palette run on a workdir rewrites
`WORKDIR/palettes/<palette.name>/`), `results/<name>.json`. A study resumed on another
machine from the kept files alone (docs/results/kept: a study longer than one machine's session)
retrains a run whose checkpoint a palette needs; runs are deterministic, and a
retrained run that differs from its kept result says so.
"""

from __future__ import annotations

import datetime
import glob
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import ml_collections

from tofa_jax.config import validate
from tofa_jax.reproduce import machine
from tofa_jax.runtime import termination
from tofa_jax.search import palette
from tofa_jax.train import checkpointing, loop, step_log


def _read(path: str) -> dict[str, Any] | None:
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


# Keys that change how a run executes, not what it computes (the tests hold both ways
# equal), left out of the fingerprint; and keys added after results were kept, left out
# at the value that computes what runs did before the key existed. Kept results stay valid.
EXECUTION_ONLY = ("model.conditional", "data.cache", "data.cache_dir", "data.workers",
                  "palette.name")
# palette.rule: every kept palette was chosen by the literal rule, before the key existed;
# palette.search_floor: every kept search drew subnets of any cost up to the budget.
AS_BEFORE = {"model.bn_sync": "global", "palette.rule": "literal", "palette.search_floor": 0.0}


def fingerprint(config: ml_collections.ConfigDict) -> str:
  """A digest of every key and value of `config` that decides what a run computes: a
  result is reused only for the same. A `train.arch` file counts by its content, not its
  path (kept results move)."""
  values = config.to_dict()
  for key in (*EXECUTION_ONLY, *AS_BEFORE):
    section, _, name = key.partition(".")
    part = values.get(section, {})
    if name in part and (key in EXECUTION_ONLY or part[name] == AS_BEFORE[key]):
      del part[name]
  arch = values.get("train", {}).get("arch")
  if isinstance(arch, str) and os.path.isfile(arch):
    with open(arch) as f:
      values["train"]["arch"] = json.load(f)
  text = json.dumps(values, sort_keys=True, default=repr)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def training_part(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` without its `palette` section, which training never reads: a training
  result stays valid when only the palettes' settings change."""
  values = config.to_dict()
  values.pop("palette", None)
  return ml_collections.ConfigDict(values)


def _reuse(path: str, config: ml_collections.ConfigDict) -> dict[str, Any] | None:
  """The result at `path` if it was computed from `config`; an error naming the file if
  it was computed from another config (the study's settings changed under it)."""
  done = _read(path)
  if done is not None and done.get("config") != fingerprint(config):
    raise ValueError(f"{path} was computed with another config than the study's now; use a "
                     "new --workdir and --kept (or move that result away to recompute it)")
  return done


def _write(path: str, value: dict[str, Any]) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=1)
  os.replace(tmp, path)  # a crash never leaves a half-written result


class Runs:
  """Runs (or reads back) the study's training and palette runs under `root`, keeping
  their results under `kept` (default: `root`)."""

  def __init__(self, root: str, log: Callable[[str], None] = print, kept: str = ""):
    self.root, self.log, self.kept = root, log, kept or root
    self.trained = 0  # runs trained by this process (the rest were read back)

  def workdir(self, arm: str, seed: int) -> str:
    return os.path.join(self.root, "runs", arm, f"seed{seed}")

  def _kept_run(self, arm: str, seed: int, name: str) -> str:
    return os.path.join(self.kept, "runs", arm, f"seed{seed}", name)

  def _once(self, path: str, config: ml_collections.ConfigDict, what: str,
            compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`compute()` with its wall time, the config's fingerprint, the machine and the
    date, kept at `path`; or what an earlier invocation kept there for the same config.
    The wall time includes earlier invocations that stopped part-way (SIGTERM, an
    error), kept meanwhile in `path`.spent; a killed process's share is lost."""
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
    result.update(seconds=spent + time.perf_counter() - start, config=fingerprint(config),
                  **_provenance())
    _write(path, result)
    if os.path.exists(spent_path):
      os.remove(spent_path)
    return result

  def _train_to_end(self, arm: str, seed: int, config: ml_collections.ConfigDict
                    ) -> dict[str, float]:
    """Trains (or resumes) the arm's run at `seed` to its last step; its final metrics."""
    workdir = self.workdir(arm, seed)
    validate.training(config)
    metrics = loop.train_and_evaluate(config, workdir)
    if not metrics:  # no final evaluation: stopped by SIGTERM, or finished before
      step, total = _latest_step(workdir), int(config.train.steps)
      if step < total:
        raise termination.Terminated(
            f"SIGTERM: {arm} (seed {seed}) stopped at step {step} of {total}, checkpoint kept "
            f"in {workdir}; run the study again to resume it")
      raise ValueError(f"{workdir} holds a finished run without its result.json; move it "
                       "away to train it again")
    self.trained += 1
    return {k: float(v) for k, v in metrics.items()}

  def train(self, arm: str, seed: int, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """{'top1_<subnet>': ..., 'seconds': ...} of the arm's run at `seed`."""
    workdir = self.workdir(arm, seed)

    def compute() -> dict[str, Any]:
      result = self._train_to_end(arm, seed, config)
      log = os.path.join(workdir, step_log.METRICS_FILE)
      kept_log = self._kept_run(arm, seed, step_log.METRICS_FILE)
      if os.path.abspath(log) != os.path.abspath(kept_log) and os.path.isfile(log):
        os.makedirs(os.path.dirname(kept_log), exist_ok=True)
        shutil.copyfile(log, kept_log)  # the tables read its training scalars
      return result

    return self._once(self._kept_run(arm, seed, "result.json"), training_part(config),
                      f"study: training {arm} (seed {seed}) in {workdir}", compute)

  def restore(self, arm: str, seed: int, config: ml_collections.ConfigDict) -> None:
    """Makes sure the arm's workdir holds its last checkpoint, which a palette needs:
    a result kept on another machine came without it, so the run is trained again
    (deterministic: a retrained run that ends otherwise than its kept result says so;
    the tables keep the kept figures)."""
    workdir = self.workdir(arm, seed)
    if _latest_step(workdir) >= int(config.train.steps):
      return
    self.log(f"study: retraining {arm} (seed {seed}) in {workdir}: its result is kept, its "
             "checkpoint is not on this machine")
    again = self._train_to_end(arm, seed, config)
    kept = _read(self._kept_run(arm, seed, "result.json")) or {}
    differ = [f"{k} {kept[k]:.4f} kept, {v:.4f} now" for k, v in sorted(again.items())
              if k in kept and abs(float(kept[k]) - v) > 1e-6]
    if differ:
      self.log(f"study: the retrained {arm} (seed {seed}) differs from its kept result: "
               f"{'; '.join(differ)}")

  def logged(self, arm: str, seed: int, key: str) -> float | None:
    """The mean of training scalar `key` (e.g. 'train/mask_rate') over the log lines
    of the arm's run at `seed` (its kept metrics.jsonl); None if never logged."""
    rows = step_log.StepLog(self._kept_run(arm, seed, step_log.METRICS_FILE)).read()
    values = [float(r[key]) for r in rows if key in r]
    return sum(values) / len(values) if values else None

  def final(self, arm: str, seed: int, key: str) -> float | None:
    """Training scalar `key` at the last log line that holds it; None if never logged."""
    rows = step_log.StepLog(self._kept_run(arm, seed, step_log.METRICS_FILE)).read()
    values = [float(r[key]) for r in rows if key in r]
    return values[-1] if values else None

  def palette(self, name: str, config: ml_collections.ConfigDict, workdir: str,
              before: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """The report (palette.json's content) of a palette run named `name` on `workdir`;
    `before()` runs first when it is computed (the study restores the checkpoint)."""
    def compute() -> dict[str, Any]:
      validate.palette(config)
      before()
      return palette.run(config, workdir, log=self.log)  # its phases and search progress

    return self._once(self.palette_path(name), config,
                      f"study: palette {name} on {workdir}", compute)

  def palette_path(self, name: str) -> str:
    return os.path.join(self.kept, "palettes", f"{name}.json")

  def is_kept(self, name: str) -> bool:
    return os.path.isfile(os.path.join(self.kept, "results", f"{name}.json"))

  def keep(self, name: str, compute: Callable[[], dict[str, Any]],
           settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """`compute()`'s result, computed once and kept as `KEPT/results/<name>.json`;
    refused (one line naming the file) if kept for other `settings`."""
    return self._once(os.path.join(self.kept, "results", f"{name}.json"),
                      ml_collections.ConfigDict(settings or {}), f"study: {name}", compute)

  def _kept_files(self) -> list[str]:
    return [path for parts in (("runs", "*", "*", "result.json"), ("palettes", "*.json"),
                               ("results", "*.json"))
            for path in sorted(glob.glob(os.path.join(self.kept, *parts)))]

  def compute_seconds(self) -> float:
    """The seconds every kept result took to compute, whichever invocation computed it:
    the study's cost, however many times it was resumed."""
    return sum(float((_read(path) or {}).get("seconds", 0.0)) for path in self._kept_files())

  def machines(self) -> list[str]:
    """The machines the kept results were computed on, most results first."""
    counts: dict[str, int] = {}
    for path in self._kept_files():
      name = (_read(path) or {}).get("machine")
      if name:
        counts[name] = counts.get(name, 0) + 1
    return sorted(counts, key=lambda m: -counts[m])


def _latest_step(workdir: str) -> int:
  if not os.path.isdir(workdir):
    return 0
  ckpt = checkpointing.Checkpointer(workdir)
  try:
    return ckpt.latest_step() or 0
  finally:
    ckpt.close()


def _provenance() -> dict[str, str]:
  return {"machine": machine.describe(),
          "finished": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}

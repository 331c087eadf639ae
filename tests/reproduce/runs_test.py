"""The study's kept results: computed once, refused under another config, and their
compute time summed across invocations."""

import json
import os

import ml_collections
import numpy as np
import pytest

from helpers.configs import tiny_config
from tofa_jax.reproduce import runs as runs_lib
from tofa_jax.runtime import termination
from tofa_jax.train import checkpointing, step_log


def test_a_kept_result_is_computed_once_and_its_seconds_are_summed(tmp_path):
  runs = runs_lib.Runs(str(tmp_path), log=lambda _: None)
  calls = []
  first = runs.keep("a", lambda: calls.append(1) or {"x": 1.0})
  again = runs_lib.Runs(str(tmp_path), log=lambda _: None).keep(
      "a", lambda: calls.append(1) or {"x": 2.0})
  assert calls == [1] and again == first and first["x"] == 1.0 and first["seconds"] >= 0.0
  tuned = runs.keep("t", lambda: {"x": 3.0}, {"steps": 100})
  assert runs.keep("t", lambda: {"x": 4.0}, {"steps": 100}) == tuned
  with pytest.raises(ValueError, match=r"/results/t\.json was computed with another config"):
    runs.keep("t", lambda: {"x": 4.0}, {"steps": 200})
  (tmp_path / "results" / "t.json").unlink()
  # Results of earlier invocations, as they lie on disk: a run, a palette, a kept result.
  for path, seconds in (("runs/lab/seed0/result.json", 100.0), ("palettes/p_seed0.json", 20.5),
                        ("results/b.json", 3.0), ("runs/lab/seed0/config.json", 999.0)):
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text(json.dumps({"seconds": seconds}))
  assert runs.compute_seconds() == pytest.approx(123.5 + first["seconds"])


def test_a_result_of_another_config_is_refused_with_its_path(tmp_path):
  runs = runs_lib.Runs(str(tmp_path), log=lambda _: None)
  config = ml_collections.ConfigDict({"a": 1})
  path = str(tmp_path / "palettes" / "p.json")
  assert runs._once(path, config, "p", lambda: {"v": 1})["v"] == 1
  assert runs._once(path, config, "p", lambda: {"v": 2})["v"] == 1
  config.a = 2
  with pytest.raises(ValueError, match=f"^{path} was computed with another config"):
    runs._once(path, config, "p", lambda: {"v": 3})


def test_a_logged_scalar_is_averaged_over_the_runs_log_lines(tmp_path):
  runs = runs_lib.Runs(str(tmp_path), log=lambda _: None)
  assert runs.logged("fm", 0, "train/mask_rate") is None  # not trained
  path = tmp_path / "runs" / "fm" / "seed0" / "metrics.jsonl"
  path.parent.mkdir(parents=True)
  path.write_text("\n".join(json.dumps(r) for r in (
      {"step": 50, "train/mask_rate": 0.1, "train/loss": 2.0},
      {"step": 100, "train/mask_rate": 0.3},
      {"step": 100, "eval/top1_max": 0.5})) + "\n")
  assert runs.logged("fm", 0, "train/mask_rate") == pytest.approx(0.2)
  assert runs.logged("fm", 0, "train/loss") == 2.0
  assert runs.logged("fm", 0, "train/loss_fm") is None
  assert runs.final("fm", 0, "train/mask_rate") == 0.3  # the last line that holds it
  assert runs.final("fm", 0, "train/loss") == 2.0
  assert runs.final("fm", 0, "train/loss_fm") is None


def test_a_run_stopped_by_sigterm_says_so_and_keeps_its_checkpoint(tmp_path, monkeypatch):
  # train_and_evaluate returns no evaluation when SIGTERM stops it after a checkpoint.
  monkeypatch.setattr(runs_lib.loop, "train_and_evaluate", lambda config, workdir: {})
  runs = runs_lib.Runs(str(tmp_path), log=lambda _: None)
  workdir = runs.workdir("lab", 0)
  ckpt = checkpointing.Checkpointer(workdir)
  ckpt.save(3, {"w": np.zeros(2, np.float32)}, {})
  ckpt.close()
  with pytest.raises(termination.Terminated, match=(
      rf"^SIGTERM: lab \(seed 0\) stopped at step 3 of 4, checkpoint kept in {workdir}; run "
      r"the study again to resume it$")):
    runs.train("lab", 0, tiny_config(**{"train.steps": 4}))
  with pytest.raises(ValueError, match=rf"^{workdir} holds a finished run without its result"):
    runs.train("lab", 0, tiny_config(**{"train.steps": 3}))
  assert not (tmp_path / "runs" / "lab" / "seed0" / "result.json").exists()
  # The stopped invocations' time is carried into the result of the one that finishes.
  spent = tmp_path / "runs" / "lab" / "seed0" / "result.json.spent"
  stopped = json.loads(spent.read_text())["seconds"]
  spent.write_text(json.dumps({"seconds": stopped + 1000.0}))
  monkeypatch.setattr(runs_lib.loop, "train_and_evaluate",
                      lambda config, workdir: {"top1_max": 0.5})
  done = runs.train("lab", 0, tiny_config(**{"train.steps": 4}))
  assert done["seconds"] >= 1000.0 + stopped
  assert done["top1_max"] == 0.5 and not spent.exists()


def _fake_training(calls: list, top1: float):
  """A stand-in for loop.train_and_evaluate: logs one line and saves the last step."""
  def train(config, workdir):
    calls.append(workdir)
    os.makedirs(workdir, exist_ok=True)
    log = step_log.StepLog(f"{workdir}/{step_log.METRICS_FILE}")
    log.write(int(config.train.steps), {"train/mask_rate": 0.25})
    ckpt = checkpointing.Checkpointer(workdir)
    ckpt.save(int(config.train.steps), {"w": np.zeros(2, np.float32)}, {})
    ckpt.close()
    return {"top1_max": top1}
  return train


def test_results_kept_apart_are_read_back_by_a_study_on_another_workdir(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(runs_lib.loop, "train_and_evaluate", _fake_training(calls, 0.5))
  kept, config = tmp_path / "kept", tiny_config(**{"train.steps": 3})
  first = runs_lib.Runs(str(tmp_path / "a"), log=lambda _: None, kept=str(kept))
  done = first.train("fm", 0, config)
  assert calls == [first.workdir("fm", 0)] and done["top1_max"] == 0.5
  assert done["machine"] and done["finished"].endswith(" UTC")
  assert sorted(p.name for p in (kept / "runs" / "fm" / "seed0").iterdir()) == [
      "metrics.jsonl", "result.json"]
  # Another machine: a new workdir, the same kept files.
  second = runs_lib.Runs(str(tmp_path / "b"), log=lambda _: None, kept=str(kept))
  assert second.train("fm", 0, config) == done and len(calls) == 1
  assert second.logged("fm", 0, "train/mask_rate") == 0.25
  assert second.machines() == [done["machine"]]
  assert second.compute_seconds() == pytest.approx(done["seconds"])


def test_restore_retrains_a_kept_run_whose_checkpoint_is_elsewhere_and_says_if_it_differs(
    tmp_path, monkeypatch):
  calls, said = [], []
  monkeypatch.setattr(runs_lib.loop, "train_and_evaluate", _fake_training(calls, 0.5))
  kept, config = str(tmp_path / "kept"), tiny_config(**{"train.steps": 3})
  runs_lib.Runs(str(tmp_path / "a"), log=lambda _: None, kept=kept).train("fm", 0, config)
  runs = runs_lib.Runs(str(tmp_path / "b"), log=said.append, kept=kept)
  runs.restore("fm", 0, config)  # no checkpoint in b: trained again, to the same result
  assert calls == [str(tmp_path / "a/runs/fm/seed0"), runs.workdir("fm", 0)]
  assert said == [f"study: retraining fm (seed 0) in {runs.workdir('fm', 0)}: its result is "
                  "kept, its checkpoint is not on this machine"]
  runs.restore("fm", 0, config)  # its checkpoint is there now
  assert len(calls) == 2 and runs.trained == 1
  monkeypatch.setattr(runs_lib.loop, "train_and_evaluate", _fake_training(calls, 0.75))
  runs = runs_lib.Runs(str(tmp_path / "c"), log=said.append, kept=kept)
  runs.restore("fm", 0, config)
  assert said[-1] == ("study: the retrained fm (seed 0) differs from its kept result: top1_max "
                      "0.5000 kept, 0.7500 now")
  kept_result = json.loads((tmp_path / "kept/runs/fm/seed0/result.json").read_text())
  assert kept_result["top1_max"] == 0.5  # the tables keep the kept figures


def test_an_arch_file_counts_in_the_fingerprint_by_its_content_not_its_path(tmp_path):
  for name, arch in (("a.json", [1, 2]), ("b.json", [1, 2]), ("c.json", [1, 3])):
    (tmp_path / name).write_text(json.dumps(arch))
  digest = lambda name: runs_lib.fingerprint(tiny_config(**{  # noqa: E731
      "train.arch": str(tmp_path / name)}))
  assert digest("a.json") == digest("b.json") != digest("c.json")
  assert runs_lib.fingerprint(tiny_config(**{"train.arch": "max"})) != digest("a.json")


def test_a_training_result_outlives_a_change_of_palette_settings_only(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(runs_lib.loop, "train_and_evaluate", _fake_training(calls, 0.5))
  runs = runs_lib.Runs(str(tmp_path), log=lambda _: None)
  runs.train("fm", 0, tiny_config(**{"train.steps": 3}))
  runs.train("fm", 0, tiny_config(**{"train.steps": 3, "palette.num_budgets": 7}))
  assert len(calls) == 1
  with pytest.raises(ValueError, match="was computed with another config"):
    runs.train("fm", 0, tiny_config(**{"train.steps": 3, "optim.lr": 0.5}))


def test_the_literal_rule_fingerprints_as_a_config_from_before_palette_rule():
  # The kept palettes were chosen by the literal rule before the key existed; the study
  # pins it (configs/study.py), and their fingerprints stay the same. 'bands' differs.
  before = tiny_config()
  del before.palette["rule"]
  literal = tiny_config(**{"palette.rule": "literal"})
  assert runs_lib.fingerprint(literal) == runs_lib.fingerprint(before)
  assert runs_lib.fingerprint(tiny_config()) != runs_lib.fingerprint(before)
  assert tiny_config().palette.rule == "bands"


def test_a_search_floor_of_zero_fingerprints_as_a_config_from_before_the_key():
  before = tiny_config(**{"palette.rule": "literal"})
  del before.palette["search_floor"]
  zero = tiny_config(**{"palette.rule": "literal"})
  assert zero.palette.search_floor == 0.0
  assert runs_lib.fingerprint(zero) == runs_lib.fingerprint(before)
  floor = tiny_config(**{"palette.rule": "literal", "palette.search_floor": 0.9})
  assert runs_lib.fingerprint(floor) != runs_lib.fingerprint(before)

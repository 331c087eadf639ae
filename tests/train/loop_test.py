"""train_and_evaluate end to end: bundled and mock-TFDS smoke runs, resume, config errors."""

from __future__ import annotations

import collections
import glob
import json
import os
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from helpers.configs import tiny_config
from helpers.paths import ROOT
from helpers.xla_env import xla_flags
from tofa_jax.data import datasets
from tofa_jax.model import supernet
from tofa_jax.space import sampling, search_space
from tofa_jax.train import checkpointing, evaluator, loop, programs, step_log
from tofa_jax.train import metrics as metrics_lib


def _restore_state(workdir: str, step: int) -> dict:
  path = os.path.join(workdir, "checkpoints", str(step), "state")
  with ocp.StandardCheckpointer() as ckptr:
    return ckptr.restore(path)


def test_smoke_on_bundled_digits(tmp_path, capsys):
  workdir = str(tmp_path)
  result = loop.train_and_evaluate(tiny_config(), workdir)
  out = capsys.readouterr().out.splitlines()
  assert out[0] == "loading data (50 labelled, 1388 unlabelled; digits, 10 classes, at 32 px)"
  logged = [x for x in out if x.startswith("step ") and "train/loss=" in x]
  assert [x.split()[1] for x in logged] == ["1", "2", "3"]
  for x in logged:  # the rate over each interval, compile time left out
    assert all(f"train/{k}=" in x for k in ("steps_per_s", "images_per_s", "eta_min"))
  assert set(result) == {"top1_max", "top1_min"}
  assert all(0.0 <= v <= 1.0 for v in result.values())
  with open(os.path.join(workdir, "subnets.jsonl")) as f:
    lines = [json.loads(x) for x in f]
  assert [x["step"] for x in lines] == [1, 2, 3]
  assert all(len(x["archs"]) == 3 for x in lines)  # min + 2 random
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "3"]
  with open(os.path.join(workdir, "checkpoints", "3", "meta", "metadata")) as f:
    meta = json.load(f)
  omega = json.loads(meta["omega"])
  min_entry = next(e for e in omega if e["count"] == 3)  # the min subnet: every step
  assert (min_entry["last"], min_entry["score"]) == (3, 1 + 2 + 3)
  assert glob.glob(os.path.join(workdir, "tb", "events.out.tfevents.*"))
  assert int(_restore_state(workdir, 3)["step"]) == 3
  # metrics.jsonl: every console scalar, the last step's evaluation merged into its line.
  rows = step_log.StepLog(os.path.join(workdir, "metrics.jsonl")).read()
  assert [r["step"] for r in rows] == [1, 2, 3]
  for row, line in zip(rows, logged, strict=True):
    for field in line.split()[2:]:
      key, value = field.split("=")
      assert row[key] == pytest.approx(float(value), rel=1e-3), key
  assert {k: rows[-1][k] for k in ("eval/top1_max", "eval/top1_min")} == {
      f"eval/{k}": v for k, v in result.items()}


def test_smoke_on_mock_tfds(tmp_path):
  import tensorflow_datasets as tfds

  cfg = tiny_config(**{"data.name": "cifar10", "data.num_labelled": 10, "train.steps": 2,
                       "loss.variant": "fm", "train.sampling": "rss_batch"})
  with tfds.testing.mock_data(num_examples=48):
    result = loop.train_and_evaluate(cfg, str(tmp_path))
  assert set(result) == {"top1_max", "top1_min"}


@pytest.mark.heavy(66)
def test_elastic_resolution_trains_every_resolution_with_one_program_each(tmp_path, capsys):
  workdir = str(tmp_path)
  # tiny_lite (32 and 35 px): the elastic path is the same in every space, and its
  # programs compile in about 20% less time than tiny's.
  cfg = tiny_config(**{"model.space": "tiny_lite", "model.resolutions": (), "train.steps": 6,
                       "train.log_every": 6, "train.checkpoint_every": 100})
  result = loop.train_and_evaluate(cfg, workdir)
  assert set(result) == {"top1_max", "top1_min"}
  with open(os.path.join(workdir, "subnets.jsonl")) as f:
    steps = [[a["resolution"] for a in json.loads(x)["archs"]] for x in f]
  assert all(r[0] == 32 for r in steps)  # the min subnet at the smallest
  assert all(len(set(r[1:])) == 1 for r in steps)  # one draw per step
  drawn = {r[-1] for r in steps}
  assert drawn == {32, 35}  # both resolutions trained within 6 steps (seed 0)
  out = capsys.readouterr().out.splitlines()
  # The teacher once, one subnet program per resolution, the update once, all compiled
  # before step 1 (CPU: remat layer, no 'none').
  first_step = next(i for i, x in enumerate(out) if x.startswith("step "))
  names = ["teacher, 35 px", "subnet, 32 px", "subnet, 35 px", "update"]
  assert [x for x in out[:first_step] if x.startswith(("compiling", "train.remat"))] == [
      "train.remat=auto: layer (the cpu backend reports no memory limit, so none is not "
      "compiled)", *[f"compiling program {k}/4 ({n}) ..." for k, n in enumerate(names, 1)]]
  assert sorted(x.split(":")[0] for x in out if x.startswith("compiled program")) == [
      f"compiled program {k}/4 ({n})" for k, n in enumerate(names, 1)]
  assert not [x for x in out[first_step:] if x.startswith("compil")]


def test_single_mode_trains_and_evaluates_only_its_arch(tmp_path, capsys):
  # TOFA Table 3's Baseline: one fixed network (the min here), labelled CE only. No
  # weight decay, so a parameter moves only if the arch's gradient reaches it.
  workdir = str(tmp_path)
  cfg = tiny_config(**{"train.mode": "single", "train.arch": "min", "loss.variant": "lab",
                       "train.steps": 2, "train.checkpoint_every": 100,
                       "optim.weight_decay": 0.0})
  result = loop.train_and_evaluate(cfg, workdir)
  assert set(result) == {"top1_min"}  # evals.subnets (default max, min): the arch alone
  out = capsys.readouterr().out.splitlines()
  assert out[:2] == ["loading data (50 labelled, 0 unlabelled; digits, 10 classes, at 32 px)",
                     "an epoch is 7 steps (50 labelled training images, 8 per step); 0 "
                     "warm-up steps (optim.warmup_epochs=0)"]
  assert [x for x in out if x.startswith("compiling")] == ["compiling program 1/1 (32 px) ..."]
  space = search_space.resolve(cfg.model)
  with open(os.path.join(workdir, "subnets.jsonl")) as f:
    assert [json.loads(x)["archs"] for x in f] == [[sampling.min_arch(space).to_dict(True)]] * 2
  model = programs.model_of(cfg, space, 10)
  before = supernet.init_variables(model, seed=cfg.seed, resolution=32)["params"]
  after = _restore_state(workdir, 2)["params"]
  moved = collections.defaultdict(list)  # layer -> whether each of its leaves moved
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(before)[0],
                          jax.tree.leaves(after), strict=True):
    moved[path[0].key].append(not np.array_equal(np.asarray(a), np.asarray(b)))
  # The min subnet has one layer in stages 0 and 1: the layers after it never train.
  for layer in ("stage0_layer1", "stage1_layer1", "stage1_layer2"):
    assert not any(moved[layer]), layer
  for layer in ("stage0_layer0", "stage1_layer0", "classifier"):
    assert any(moved[layer]), layer


def test_resumed_run_equals_uninterrupted(tmp_path, capsys):
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  overrides = {"train.steps": 4, "train.checkpoint_every": 100, "evals.subnets": ()}
  loop.train_and_evaluate(tiny_config(**overrides), full)
  loop.train_and_evaluate(tiny_config(**overrides, **{"train.stop_after_steps": 2}), split)
  assert sorted(os.listdir(os.path.join(split, "checkpoints"))) == ["2"]
  capsys.readouterr()
  with open(os.path.join(split, "metrics.jsonl"), "a") as f:  # logged, then a crash
    f.write(json.dumps({"step": 3, "train/loss": -1.0}) + "\n")
  loop.train_and_evaluate(tiny_config(**overrides), split)  # resumes at step 2
  assert "resumed from step 2 of 4" in capsys.readouterr().out.splitlines()
  a, b = _restore_state(full, 4), _restore_state(split, 4)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
  with open(os.path.join(split, "subnets.jsonl")) as f:
    assert [json.loads(x)["step"] for x in f] == [1, 2, 3, 4]
  with open(os.path.join(split, "metrics.jsonl")) as f:  # the crashed run's step 3 dropped
    rows = [json.loads(x) for x in f]
  assert [r["step"] for r in rows] == [1, 2, 3, 4] and rows[2]["train/loss"] > 0


@pytest.mark.parametrize("overrides,message", [
    ({"data.name": "imagenet21k"}, r"data.name='imagenet21k' is unknown; choose one of \["),
    ({"data.num_labelled": 5000}, r"data.num_labelled=5000 exceeds the 1438 training examples"),
    ({"data.image_size": 24}, r"data.image_size=24 is below the largest training resolution "
                              r"32 of space 'tiny' \[32\]; leave it unset"),
    ({"data.fully_labelled": True},
     r"loss.variant='tofa' needs unlabelled data.*use loss.variant='lab'"),
    ({"train.sampling": "zigzag"}, r"train.sampling='zigzag' is unknown"),
    ({"loss.variant": "fixmatch"}, r"loss.variant='fixmatch' is unknown"),
    ({"train.mode": "single"}, r"^train.mode='single' trains one network with no teacher, but "
                               r"loss.variant='tofa' distils"),
    ({"train.sampling": "alternating", "loss.variant": "lab"},
     r"^train.sampling='alternating' switches subnets at epoch boundaries, but train.steps=3 "
     r"is under 2 epochs of 7 steps; raise train.steps to >= 14$"),
])
def test_config_errors_name_the_key(tmp_path, overrides, message):
  with pytest.raises(ValueError, match=message):
    loop.train_and_evaluate(tiny_config(**overrides), str(tmp_path))


def test_a_short_run_fits_its_warm_up_and_says_so(tmp_path, capsys, monkeypatch):
  # Said once the data's sizes are known; the run stops where it would compile.
  def stop(*args, **kwargs):
    raise RuntimeError("stopped before compiling")
  monkeypatch.setattr(programs, "compile_run", stop)
  with pytest.raises(RuntimeError, match="^stopped before compiling$"):
    loop.train_and_evaluate(tiny_config(**{"optim.warmup_epochs": 1, "train.steps": 8}),
                            str(tmp_path))
  assert capsys.readouterr().out.splitlines()[1:4] == [
      "an epoch is 90 steps (1438 labelled + unlabelled training images, 16 per step); 4 "
      "warm-up steps (optim.warmup_epochs=1)",
      "optim.warmup_epochs=1 comes to 90 warm-up steps, more than half of train.steps=8: "
      "warming up 4 steps instead (set optim.warmup_epochs <= 0.04 to choose)",
      "BN recalibration on 32 of the 1438 training images (evals.bn_images, whole batches of "
      "evals.batch_size)"]


def test_batch_must_divide_over_devices(tmp_path):
  env = dict(os.environ, XLA_FLAGS=xla_flags("--xla_force_host_platform_device_count=8"),
             JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  r = subprocess.run([sys.executable, "-m", "tofa_jax.main", "--config=configs/demo.py",
                      f"--workdir={tmp_path}", "--config.train.batch_size=12"],
                     capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
  assert r.returncode != 0
  assert r.stderr.strip().splitlines()[-1] == (
      "error: train.batch_size=12 does not divide over 8 devices; use a multiple of 8")


def test_labelled_split_is_class_balanced_and_seeded():
  labels = np.repeat(np.arange(10), 30)
  lab, unl = datasets.labelled_split(labels, 25, 10, seed=3)
  counts = np.bincount(labels[lab], minlength=10)
  assert sorted(counts.tolist()) == [2] * 5 + [3] * 5
  assert len(np.intersect1d(lab, unl)) == 0 and len(lab) + len(unl) == 300
  np.testing.assert_array_equal(lab, datasets.labelled_split(labels, 25, 10, seed=3)[0])
  assert not np.array_equal(lab, datasets.labelled_split(labels, 25, 10, seed=4)[0])


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path):
  # std 0 turns every normalised image into inf/nan, so the first loss is not finite.
  cfg = tiny_config(**{"data.mean": (0.5, 0.5, 0.5), "data.std": (0.0, 0.0, 0.0)})
  with pytest.raises(loop.NonFiniteLoss, match=r"loss is nan at step 1; stopping\. The last "
                                                r"good checkpoint \(step 0\)"):
    loop.train_and_evaluate(cfg, str(tmp_path))
  assert os.listdir(os.path.join(str(tmp_path), "checkpoints")) == []


def test_non_finite_parameters_are_never_saved(tmp_path):
  # An infinite learning rate: step 1's loss is finite, the parameters after it are not.
  cfg = tiny_config(**{"optim.lr": float("inf"), "optim.warmup_epochs": 0,
                       "train.checkpoint_every": 1, "train.log_every": 100})
  with pytest.raises(loop.NonFiniteLoss, match=r"the parameters are not finite after step 1 "
                                                r"\(the losses were finite\); stopping\. The last "
                                                r"good checkpoint \(step 0\)"):
    loop.train_and_evaluate(cfg, str(tmp_path))
  assert os.listdir(os.path.join(str(tmp_path), "checkpoints")) == []


def test_the_host_reads_the_device_only_at_log_checkpoint_and_eval_steps(tmp_path, monkeypatch):
  # Every host read of a jax.Array (float(), np.asarray, device_get) goes through
  # ArrayImpl._value. Outside the loop's sanctioned reads, one fails the run.
  from jax._src import array as jax_array

  value, open_reads, reads = jax_array.ArrayImpl._value, [0], []

  def guarded(self):
    if not open_reads[0]:
      raise AssertionError("the loop read a device value between log/checkpoint/eval steps")
    return value.fget(self)

  def allow(owner, name, step_arg):
    read = getattr(owner, name)

    def wrapped(*args):
      reads.append((name, args[step_arg]) if step_arg is not None else (name,))
      open_reads[0] += 1
      try:
        return read(*args)
      finally:
        open_reads[0] -= 1
    monkeypatch.setattr(owner, name, wrapped)

  allow(metrics_lib.StepMetrics, "first_non_finite", None)
  allow(metrics_lib.StepMetrics, "means", 1)
  allow(loop, "_all_finite", None)
  allow(checkpointing.Checkpointer, "save", 1)
  allow(evaluator.Evaluator, "__call__", None)
  # The guard starts with the loop: set-up may read (initial variables, restore).
  start = metrics_lib.StepMetrics.__init__

  def arm(self, *args):
    start(self, *args)
    monkeypatch.setattr(jax_array.ArrayImpl, "_value", property(guarded))
  monkeypatch.setattr(metrics_lib.StepMetrics, "__init__", arm)
  cfg = tiny_config(**{"train.steps": 7, "train.log_every": 3, "train.checkpoint_every": 5,
                       "train.eval_every": 0})
  loop.train_and_evaluate(cfg, str(tmp_path))
  check = [("first_non_finite",)]
  assert reads == [*check, ("means", 3),
                   *check, ("_all_finite",), ("save", 5),
                   *check, ("means", 6),
                   *check, ("means", 7), ("_all_finite",), ("save", 7), ("__call__",)]


def test_a_restarted_run_loads_its_train_step_from_the_persistent_cache(tmp_path):
  cache, workdir = tmp_path / "cache", tmp_path / "run"
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
  env.pop("JAX_COMPILATION_CACHE_DIR", None)

  def run(*flags):
    r = subprocess.run([sys.executable, "-m", "tofa_jax.main",
                        "--config=tests/helpers/tiny_run_config.py", f"--workdir={workdir}",
                        f"--config.jax_cache_dir={cache}", "--config.train.steps=4",
                        "--config.evals.subnets=()", *flags],  # the train step alone
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout

  def steps():
    return sorted(x for x in os.listdir(cache) if x.startswith(
        ("jit_teacher_step-", "jit_subnet_step-", "jit_update_step-")))

  run("--config.train.stop_after_steps=2")  # as if preempted at step 2
  written = steps()
  # The sandwich's programs at one resolution, stored on disk: teacher, subnet, update.
  assert [x.split("-")[0] for x in written] == ["jit_subnet_step", "jit_teacher_step",
                                                "jit_update_step"]
  out = run()
  assert "resumed from step 2 of 4" in out.splitlines()
  assert steps() == written  # the restart found it: nothing compiled anew was stored

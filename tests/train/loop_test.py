"""train_and_evaluate end to end: bundled and mock-TFDS smoke runs, resume, config errors."""

from __future__ import annotations

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
from tofa_jax.data import datasets
from tofa_jax.train import loop


def _restore_state(workdir: str, step: int) -> dict:
  path = os.path.join(workdir, "checkpoints", str(step), "state")
  with ocp.StandardCheckpointer() as ckptr:
    return ckptr.restore(path)


def test_smoke_on_bundled_digits(tmp_path):
  workdir = str(tmp_path)
  result = loop.train_and_evaluate(tiny_config(), workdir)
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


def test_smoke_on_mock_tfds(tmp_path):
  import tensorflow_datasets as tfds

  cfg = tiny_config(**{"data.name": "cifar10", "data.num_labelled": 10, "train.steps": 2,
                       "loss.variant": "fm", "train.sampling": "rss_batch"})
  with tfds.testing.mock_data(num_examples=48):
    result = loop.train_and_evaluate(cfg, str(tmp_path))
  assert set(result) == {"top1_max", "top1_min"}


def test_elastic_resolution_trains_every_resolution_with_one_program_each(tmp_path, capsys):
  workdir = str(tmp_path)
  cfg = tiny_config(**{"model.resolutions": (), "train.steps": 6, "train.log_every": 6,
                       "train.checkpoint_every": 100})  # the tiny space's (32, 40)
  result = loop.train_and_evaluate(cfg, workdir)
  assert set(result) == {"top1_max", "top1_min"}
  with open(os.path.join(workdir, "subnets.jsonl")) as f:
    steps = [[a["resolution"] for a in json.loads(x)["archs"]] for x in f]
  assert all(r[0] == 32 for r in steps)  # the min subnet at the smallest
  assert all(len(set(r[1:])) == 1 for r in steps)  # one draw per step
  drawn = {r[-1] for r in steps}
  assert drawn == {32, 40}  # both resolutions trained within 6 steps (seed 0)
  out = capsys.readouterr().out
  compiles = [x for x in out.splitlines() if x.startswith("compiling the train step for")]
  # One program per drawn resolution, compiled when first drawn: at most R + 1.
  assert sorted(compiles) == [
      f"compiling the train step for {r} px (random subnets; max 40 px, min 32 px) ..."
      for r in sorted(drawn)]


def test_resumed_run_equals_uninterrupted(tmp_path):
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  overrides = {"train.steps": 4, "train.checkpoint_every": 100, "evals.subnets": ()}
  loop.train_and_evaluate(tiny_config(**overrides), full)
  loop.train_and_evaluate(tiny_config(**overrides, **{"train.stop_after_steps": 2}), split)
  assert sorted(os.listdir(os.path.join(split, "checkpoints"))) == ["2"]
  loop.train_and_evaluate(tiny_config(**overrides), split)  # resumes at step 2
  a, b = _restore_state(full, 4), _restore_state(split, 4)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
  with open(os.path.join(split, "subnets.jsonl")) as f:
    assert [json.loads(x)["step"] for x in f] == [1, 2, 3, 4]


@pytest.mark.parametrize("overrides,message", [
    ({"data.name": "imagenet21k"}, r"data.name='imagenet21k' is unknown; choose one of \["),
    ({"data.num_labelled": 5000}, r"data.num_labelled=5000 exceeds the 1438 training examples"),
    ({"data.image_size": 24}, r"data.image_size=24 is below the largest training resolution "
                              r"32 of space 'tiny' \[32\]; leave it unset"),
    ({"data.fully_labelled": True},
     r"loss.variant='tofa' needs unlabelled data.*use loss.variant='lab'"),
    ({"train.sampling": "zigzag"}, r"train.sampling='zigzag' is unknown"),
    ({"loss.variant": "fixmatch"}, r"loss.variant='fixmatch' is unknown"),
])
def test_config_errors_name_the_key(tmp_path, overrides, message):
  with pytest.raises(ValueError, match=message):
    loop.train_and_evaluate(tiny_config(**overrides), str(tmp_path))


def test_batch_must_divide_over_devices(tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
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

"""The study's arms are compared under one evaluation and one optimiser (issue 33): every
arm warms up the same steps and recalibrates BN on the same 1,000 training images, each
seed draws its own labelled split, and results kept under the earlier rules (a warm-up in
epochs, 200 labelled calibration images) are never reused for these."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from tofa_jax.data import calibration, loading
from tofa_jax.reproduce import arms, runs
from tofa_jax.space import search_space
from tofa_jax.train import epochs, optim
from tofa_jax.train import step as train_step

BASE = importlib.import_module("configs.study").get_config()
WARMUP = 25  # configs/study.py: 25 of 400 steps, every arm


def _arm(name: str, seed: int = 0):
  return arms.arm_config(BASE, arms.ARMS[name], seed)


def _epoch(config) -> epochs.Epoch:
  """The arm's epoch as the trainer computes it (train/loop.py)."""
  space = search_space.resolve(config.model)
  uses = train_step.step_config(config, space).uses_unlabelled
  return epochs.of_data(config, loading.load_data(config), uses)


def _before(config):
  """`config` as the kept runs had it: 0.2 warm-up epochs, 2 labelled BN batches."""
  old = type(config)(config.to_dict())
  old.optim.warmup_epochs = 0.2
  del old.optim["warmup_steps"]
  del old.evals["bn_images"]
  old.evals.bn_batches = 2
  return old


@pytest.mark.parametrize("name", sorted(arms.ARMS))
def test_every_arm_warms_up_the_same_steps(name):
  config = _arm(name)
  epoch = _epoch(config)
  total = int(config.train.steps)
  assert epochs.run_warmup(config.optim, epoch.steps, total) == WARMUP
  # The schedule the trainer builds reaches the lr at step 25, not before.
  _, sched = optim.make(config.optim, epoch.steps, total)
  lr = float(config.optim.lr)
  assert float(sched(WARMUP - 1)) < lr and float(sched(WARMUP)) == pytest.approx(lr, rel=1e-6)
  # In epochs (0.2) the arms differed: 1 step for L^lab alone, 25 with unlabelled terms.
  before = epochs.run_warmup(_before(config).optim, epoch.steps, total)
  assert before == {7: 1, 125: 25, 32: 6, 88: 18}[epoch.steps], (epoch.steps, before)


@pytest.mark.parametrize("name", sorted(arms.ARMS))
def test_every_arm_recalibrates_bn_on_1000_training_images(name):
  config = _arm(name, seed=3)
  data = loading.load_data(config)
  calib = calibration.of_config(config, data)
  assert BASE.evals.bn_images >= 1000 and len(calib) == 1000 == len(set(calib.tolist()))
  assert len(calib) % BASE.evals.batch_size == 0
  pool = np.union1d(data.labelled_idx, data.unlabelled_idx)
  assert np.isin(calib, pool).all() and not np.isin(calib, data.val_idx).any()
  # The same images at every evaluation of the run (the palette's and the trainer's).
  np.testing.assert_array_equal(calibration.of_config(config, loading.load_data(config)),
                                calib)


@pytest.mark.parametrize("name,labelled", [("tofa", 100), ("sandwich", 500),
                                           ("held_out", 100)])
def test_each_seed_draws_its_own_labelled_split(name, labelled):
  assert len(BASE.study.seeds) >= 5 and tuple(BASE.study.seeds) == (0, 1, 2, 3, 4)
  splits = [loading.load_data(_arm(name, s)).labelled_idx for s in BASE.study.seeds]
  assert all(len(s) == labelled for s in splits)
  assert len({tuple(s.tolist()) for s in splits}) == len(splits)  # pairwise different
  np.testing.assert_array_equal(loading.load_data(_arm(name, 1)).labelled_idx, splits[1])
  # Arms of one seed share it (the tables' paired differences rest on that).
  if labelled == 100 and name == "tofa":
    np.testing.assert_array_equal(loading.load_data(_arm("baseline", 1)).labelled_idx,
                                  splits[1])


def test_results_kept_under_the_earlier_rules_are_refused(tmp_path):
  for name in sorted(arms.ARMS):
    now = runs.training_part(_arm(name))
    assert runs.fingerprint(now) != runs.fingerprint(runs.training_part(_before(_arm(name))))
  kept = runs.Runs(str(tmp_path))
  path = tmp_path / "runs" / "tofa" / "seed0" / "result.json"
  path.parent.mkdir(parents=True)
  old = runs.fingerprint(runs.training_part(_before(_arm("tofa"))))
  path.write_text(json.dumps({"top1_max": 0.8, "config": old}))
  with pytest.raises(ValueError, match="was computed with another config than the study's"):
    kept.train("tofa", 0, _arm("tofa"))

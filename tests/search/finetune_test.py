"""python -m tofa_jax.finetune on a tiny trained palette: CE and Focal Distillation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import xla_env
from helpers.configs import tiny_config
from helpers.paths import ROOT
from tofa_jax.search import finetune as ft
from tofa_jax.search import palette, palette_store
from tofa_jax.space import arch as A
from tofa_jax.train import loop
from tofa_jax.weights import export


@pytest.fixture(scope="module")
def palette_json(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run"))
  cfg = tiny_config(**{"train.steps": 4, "train.checkpoint_every": 4,
                       "palette.num_budgets": 3, "palette.latency_batch": 2,
                       "palette.latency_repeats": 1, "palette.latency_warmup": 1})
  loop.train_and_evaluate(cfg, workdir)
  report = palette.run(cfg, workdir, log=lambda _: None)
  assert len(report["models"]) >= 2
  return os.path.join(palette_store.palette_dir(workdir, report["name"]), "palette.json")


def _cli(*flags: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
             JAX_COMPILATION_CACHE_DIR=xla_env.CACHE_DIR)
  return subprocess.run([sys.executable, "-m", "tofa_jax.finetune", *flags],
                        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def test_ce_and_fd_fine_tuning_report_and_model(palette_json, tmp_path):
  with open(palette_json) as f:
    pal = json.load(f)
  last = len(pal["models"]) - 1
  ce = ft.finetune(palette_json, last, ft.Settings(loss="ce", steps=3, log_every=1),
                   out=str(tmp_path / "ce"), log=lambda _: None)
  workdir = os.path.dirname(os.path.dirname(os.path.dirname(palette_json)))
  r = _cli(f"--workdir={workdir}", f"--member={last}", "--loss=fd", "--steps=3",  # the newest
           "--log_every=1", "--fd_beta=5")
  assert r.returncode == 0, r.stderr[-3000:]
  out = os.path.join(os.path.dirname(palette_json), "finetune", f"member_{last:02d}_fd")
  with open(os.path.join(out, ft.REPORT_FILE)) as f:
    fd = json.load(f)
  with open(tmp_path / "ce" / ft.REPORT_FILE) as f:
    assert json.load(f) == json.loads(json.dumps(ce))  # the report is what finetune returned

  for rep in (ce, fd):
    # Before fine-tuning, the member measures exactly as the palette recorded it.
    assert rep["member"] == last and rep["reference"] == last - 1  # the next smaller member
    assert rep["before"] == rep["recorded"]
    assert rep["recorded"] == {"top1": pal["models"][last]["top1"],
                               "nfr": pal["nfr_matrix"][last - 1][last]}
    assert rep["reference_top1"] == pal["models"][last - 1]["top1"]
    assert rep["test_examples"] == pal["test_examples"]
    assert 0 <= rep["after"]["top1"] <= 1 and 0 <= rep["after"]["nfr"] <= 1
    # The fine-tuned member is a sealed static model of the same arch, and measures
    # as the report says.
    stored = export.load(rep["model_dir"])
    assert stored.arch == A.Arch.from_dict(pal["models"][last]["arch"])
    assert stored.info["finetune"]["after"] == rep["after"]
    split = ft._TestSplit(ft.loading.load_data(ft.saved_config.get_config(pal["workdir"])).test,
                          32)
    pred = split.predictions(stored, stored.variables)
    assert float(np.mean(pred == split.labels)) == rep["after"]["top1"]
  assert fd["loss"] == "fd" and fd["settings"]["fd_temperature"] == 100.0
  assert ce["final_metrics"]["fd"] == 0 and fd["final_metrics"]["fd"] > 0
  np.testing.assert_allclose(fd["final_metrics"]["loss"],
                             fd["final_metrics"]["ce"] + fd["final_metrics"]["fd"], rtol=1e-5)
  # CE and FD move the weights differently.
  a, b = (export.load(rep["model_dir"]).variables["params"] for rep in (ce, fd))
  assert np.max(np.abs(a["classifier"]["kernel"] - b["classifier"]["kernel"])) > 0
  lines = r.stdout.splitlines()
  assert lines[-5] == (f"member {last}, fd for 3 steps; NFR from member {last - 1} "
                       f"(top-1 {100 * fd['reference_top1']:.2f}%)")
  assert lines[-3].split() == ["before", f"{100 * fd['before']['top1']:.2f}%",
                               f"{100 * fd['before']['nfr']:.2f}%"]
  assert sum(x.startswith("finetune: step ") for x in lines) == 3

  with pytest.raises(ValueError, match=r"^--out=.* holds a fine-tuned model already"):
    ft.finetune(palette_json, last, ft.Settings(loss="ce", steps=1), out=str(tmp_path / "ce"))


def test_bad_flags_are_one_line_errors(palette_json, tmp_path):
  _, members = ft.read_palette(palette_json)
  n = len(members)
  cases = [
      ((f"--palette={tmp_path}/none.json", "--member=0"),
       f"error: --palette={tmp_path}/none.json: no such file (python -m tofa_jax.palette "
       "writes DIR/palettes/NAME/palette.json)"),
      ((f"--palette={palette_json}", f"--member={n}"),
       f"error: --member={n} is out of range; the palette's members are {list(range(n))}"),
      ((f"--palette={palette_json}", "--member=1", "--loss=mse"),
       "error: --loss='mse' is unknown; choose one of ['ce', 'fd']"),
  ]
  for flags, message in cases:
    r = _cli(*flags)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [message]
  with pytest.raises(ValueError, match=r"^--member=0 is the smallest member.*--reference=INDEX"):
    ft.pick(members, 0, None)
  with pytest.raises(ValueError, match=r"^--reference=1 is not another member; choose one"):
    ft.pick(members, 1, 1)
  assert ft.pick(members, 0, 1) == (0, 1)
  with pytest.raises(ValueError, match=r"^--fd_temperature=0.0; use a positive number"):
    ft.Settings(fd_temperature=0.0).check()

"""python -m tofa_jax.palette end to end on a freshly trained tiny workdir."""

from __future__ import annotations

import csv
import dataclasses
import importlib
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from ml_collections import ConfigDict

from helpers import xla_env
from helpers.configs import set_key, tiny_config
from helpers.paths import ROOT
from tofa_jax.config import validate
from tofa_jax.data import datasets
from tofa_jax.deploy import latency_table
from tofa_jax.palette import _argv_with_config
from tofa_jax.runtime import saved_config
from tofa_jax.search import palette
from tofa_jax.space import arch as A
from tofa_jax.space import flops, genome, sampling
from tofa_jax.space.search_space import get_space
from tofa_jax.train import epochs, loop, step_log
from tofa_jax.weights import export


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run"))
  cfg = tiny_config(**{"train.steps": 4, "train.checkpoint_every": 4,
                       "data.val_fraction": 0.3})
  loop.train_and_evaluate(cfg, workdir)
  return workdir


def _palette(workdir: str, *overrides: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
             JAX_COMPILATION_CACHE_DIR=xla_env.CACHE_DIR)
  return subprocess.run([sys.executable, "-m", "tofa_jax.palette", f"--workdir={workdir}",
                         *overrides], capture_output=True, text=True, env=env, cwd=ROOT,
                        timeout=600)


def test_palette_end_to_end(trained):
  r = _palette(trained, "--config.palette.method=regnas",
               "--config.palette.compare=('rule','random')",
               "--config.palette.num_budgets=3",
               "--config.palette.random_samples=3",
               "--config.palette.evolution.population=4",
               "--config.palette.evolution.generations=2",
               "--config.palette.evolution.parents=2",
               "--config.palette.evolution.num_mutations=2",
               "--config.palette.evolution.num_crossovers=2",
               "--config.palette.latency_batch=4",
               "--config.palette.latency_repeats=2",
               "--config.palette.population_bins=2",
               "--config.palette.population_per_bin=2",
               "--config.palette.progress_every_s=0")
  assert r.returncode == 0, r.stderr[-3000:]
  out = os.path.join(trained, "palettes", "regnas-mflops-n3")  # METHOD-METRIC-BUDGETS
  with open(os.path.join(out, "palette.json")) as f:
    report = json.load(f)
  assert report["name"] == "regnas-mflops-n3" and f"wrote {out}/palette.json" in r.stdout
  space = get_space("tiny")
  archs = [A.Arch.from_dict(m["arch"]) for m in report["models"]]

  # Budgets: 3, evenly spaced over the space's MFLOPs range at the training resolution.
  lo = flops.count(space, sampling.min_arch(space), 10).mflops
  np.testing.assert_allclose(report["budgets"][0], lo, rtol=1e-6)
  assert len(report["budgets"]) == 3 and report["metric"] == "mflops"
  assert len(report["models"]) + len(report["missing"]) == 3
  for m, a in zip(report["models"], archs, strict=True):
    assert m["mflops"] <= m["budget"] + 1e-9
    assert m["mflops"] == pytest.approx(flops.count(space, a, 10).mflops)
    assert a.resolution == 32 and 0.0 <= m["top1"] <= 1.0
    assert set(m["latency_ms"]) == {"1", "4"} and all(v > 0 for v in m["latency_ms"].values())
  for method, c in report["comparison"].items():
    for p in c["picks"]:
      assert p["arch"] is None or p["mflops"] <= p["budget"] + 1e-9, method
  # Every member says which earlier member it repeats (any method; here regnas), and only
  # the rule's 'bands' marks fallbacks.
  first = [next((j for j in range(i) if archs[j] == a), None) for i, a in enumerate(archs)]
  assert [m["duplicate_of"] for m in report["models"]] == first
  assert not any(m["fallback"] for m in report["models"])
  assert report["rule"] is None and report["index"] is None  # set for method=rule only
  assert (report["comparison"]["rule"]["rule"], report["comparison"]["rule"]["index"]) == (
      "bands", "last")

  # REG-NAS: each member contains every weight of the one before (CAS), and the
  # neighbour NFRs are the matrix's entries.
  for small, big in zip(archs[:-1], archs[1:], strict=True):
    assert genome.contains(space, big, small)
  matrix = np.asarray(report["nfr_matrix"])
  assert matrix.shape == (len(archs), len(archs)) and np.all(np.diag(matrix) == 0)
  for i, m in enumerate(report["models"][1:], 1):
    assert m["nfr_from_smaller"] == matrix[i - 1, i]

  # The rule only picks subnets of Omega; search ran on the held-out validation split.
  with open(os.path.join(trained, "subnets.jsonl")) as f:
    omega = {A.Arch.from_dict(a) for line in f for a in json.loads(line)["archs"]}
  rule = [A.Arch.from_dict(p["arch"]) for p in report["comparison"]["rule"]["picks"]
          if p["arch"]]
  assert rule and all(a in omega for a in rule)
  assert report["comparison"]["rule"]["evaluated_on_validation"] == 0
  assert report["comparison"]["random"]["evaluated_on_validation"] > 0

  # Progress (a line per evaluation at progress_every_s=0): counted 1, 2, ... of the
  # most a search can need: 3 budgets x 3 samples; 3 x (4 + 2 x (2 + 2)) for evolution.
  for method, most in (("random", 9), ("regnas", 36)):
    counts = [int(x.split(": ")[2].split(" of at most ")[0]) for x in r.stdout.splitlines()
              if x.startswith(f"palette: {method}: ") and f" of at most {most} subnets" in x]
    assert counts == list(range(1, len(counts) + 1)) and len(counts) <= most
    assert len(counts) >= report["comparison"][method]["evaluated_on_validation"] > 0
  labels = datasets.bundled("digits", "train").labels
  _, val_idx = datasets.validation_split(labels, 0.3, 0)
  assert report["validation"] == {"examples": len(val_idx), "held_out_in_training": True}
  # Every one of the 359 test digits is scored (11 batches of 32, the last padded), after
  # BN recalibration on evals.bn_images=32 training images (helpers/configs.py).
  assert (report["test_examples"], report["bn_images"]) == (359, 32)

  # Files: CSV rows, plots, one exported static model per member.
  with open(os.path.join(out, "palette.csv")) as f:
    rows = list(csv.DictReader(f))
  assert [float(x["mflops"]) for x in rows] == [m["mflops"] for m in report["models"]]
  assert [x["duplicate_of"] for x in rows] == ["" if d is None else str(d) for d in first]
  assert [x["fallback"] for x in rows] == ["False"] * len(rows)
  for png in ("accuracy_vs_mflops.png", "accuracy_vs_latency.png", "nfr_heatmap.png",
              "population.png"):
    with open(os.path.join(out, png), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert len(report["population"]) == 2
  for m, a in zip(report["models"], archs, strict=True):
    assert export.load(m["export_dir"]).arch == a


def test_predictor_method_evaluates_only_its_samples_and_picks_one_per_budget(
    trained, monkeypatch):
  # TOFA 4.6 (a), in process: the samples are the only validation evaluations.
  cfg = saved_config.get_config(trained)
  for key, value in (("method", "predictor"), ("num_budgets", 3), ("export", False),
                     ("latency_batch", 2), ("latency_repeats", 2), ("progress_every_s", 0),
                     ("predictor.samples", 20), ("predictor.epochs", 20),
                     ("evolution.population", 4), ("evolution.generations", 2),
                     ("evolution.parents", 2), ("evolution.num_mutations", 2),
                     ("evolution.num_crossovers", 2)):
    set_key(cfg.palette, key, value)
  validated, val_top1 = [], palette.Palette.val_top1

  def counted(self, arch):
    validated.append(arch)
    return val_top1(self, arch)

  monkeypatch.setattr(palette.Palette, "val_top1", counted)
  lines = []
  report = palette.run(cfg, trained, log=lines.append)
  assert len(validated) == len(set(validated)) == 20
  c = report["comparison"]["predictor"]
  assert c["evaluated_on_validation"] == 20
  fit = c["predictor"]
  assert (fit["samples"], fit["trained_on"], fit["held_out"]) == (20, 16, 4)
  assert fit["rmse"] >= 0 and fit["encoding_size"] == sum(
      len(x.choices) for x in genome.Genome(get_space("tiny"), (32,)).genes)
  assert len(c["picks"]) == 3 and [p["budget"] for p in c["picks"]] == report["budgets"]
  for p in c["picks"]:  # the lowest budget is the smallest subnet's cost: all fit
    assert p["arch"] is not None and p["mflops"] <= p["budget"] + 1e-9
    assert p["note"].startswith("predicted_top1=")
  assert [m["method"] for m in report["models"]] == ["predictor"] * 3
  counts = [int(x.split(": ")[2].split(" of at most ")[0]) for x in lines
            if x.startswith("palette: predictor: ") and " of at most 20 subnets" in x]
  assert counts == list(range(1, 21))


def test_the_palette_scores_a_subnet_as_the_training_run_did(trained):
  # One calibration rule and the whole test split in both (data/calibration.py): the
  # run's final top-1 of its max and min subnets is the palette's, image for image.
  rows = step_log.StepLog(os.path.join(trained, step_log.METRICS_FILE)).read()
  final = rows[-1]
  lines = []
  pal = palette.Palette(saved_config.get_config(trained), trained, log=lines.append)
  for name in ("max", "min"):
    assert pal.test.top1(sampling.sample_named(pal.space, name)) == final[f"eval/top1_{name}"]
  assert len(pal.test.labels) == 359 and len(pal.test.calib[1]) == 32
  pool = np.union1d(pal.data.labelled_idx, pal.data.unlabelled_idx)
  assert lines[0] == (f"palette: BN recalibration on 32 of the {len(pool)} training images "
                      "(evals.bn_images, whole batches of evals.batch_size)")
  # Validation scores recalibrate on the same draw: the held-out images were never in it.
  assert not np.isin(pal.val.calib[1], pal.data.val_idx).any()
  np.testing.assert_array_equal(pal.val.calib[1], pal.test.calib[1])


def test_saved_config_is_the_default_and_errors_are_one_line(trained, tmp_path):
  argv = _argv_with_config(["palette", f"--workdir={trained}"])
  assert argv[1] == f"--config={saved_config.__file__}:{trained}"
  assert _argv_with_config(["p", "--config=x.py", "--workdir=d"]) == ["p", "--config=x.py",
                                                                      "--workdir=d"]
  cfg = saved_config.get_config(trained)
  assert cfg.model.space == "tiny" and cfg.data.val_fraction == 0.3
  assert isinstance(cfg.palette.compare, tuple) and len(cfg.data.mean) == 3

  r = _palette(trained, "--config.palette.metric=flops")
  assert r.returncode != 0
  assert r.stderr.strip().splitlines()[-1] == (
      "error: palette.metric='flops' is unknown; choose one of "
      "['mflops', 'params', 'memory', 'latency']")
  r = _palette(str(tmp_path))
  assert "no config.json" in r.stderr
  damaged = tmp_path / "config.json"
  damaged.write_text('{"model": {"space": "ti')  # a truncated config.json: named, not parsed
  with pytest.raises(ValueError, match=rf"^{damaged} is unreadable \(Unterminated string"):
    saved_config.get_config(str(tmp_path))


def _export(palette_json: str, *flags: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", "tofa_jax.export", f"--palette={palette_json}",
                         *flags], capture_output=True, text=True, env=env, cwd=ROOT,
                        timeout=600)


def test_a_config_saved_before_bn_images_and_warmup_steps_loads(tmp_path):
  # Such a run had evals.bn_batches (labelled batches) and a warm-up in epochs alone: its
  # palette recalibrates by today's rule at the default count.
  old = tiny_config().to_dict()
  del old["evals"]["bn_images"], old["optim"]["warmup_steps"]
  old["evals"]["bn_batches"] = 2
  (tmp_path / "config.json").write_text(json.dumps(old))
  cfg = saved_config.get_config(str(tmp_path))
  default = importlib.import_module("configs.default").get_config()
  assert cfg.evals.bn_images == saved_config.BN_IMAGES == default.evals.bn_images
  assert "bn_batches" not in cfg.evals and cfg.optim.warmup_steps == -1
  assert epochs.warmup_form(cfg.optim) == ("optim.warmup_epochs", 0)
  validate.palette(cfg)


def test_latency_budgets_from_a_table_then_exported_files_reproduce_the_top1(
    trained, tmp_path, monkeypatch):
  # A latency table whose entries are known functions of each layer's input (no timing),
  # so the palette's figures can be checked against it exactly.
  space = get_space("tiny")
  monkeypatch.setattr(latency_table, "time_fn",
                      lambda rt, fn, hwc, *a: hwc[0] * hwc[2] / 100 + 0.01)
  table = latency_table.build(space, "onnxruntime", 1, 10, 1, 1, resolutions=(32,),
                              log=lambda _: None)
  path = latency_table.save(table, str(tmp_path / "lut.json"))
  lut = latency_table.load(path, space, 10)
  r = _palette(trained, "--config.palette.metric=latency", "--config.palette.budgets=(8,12)",
               f"--config.palette.latency_table={path}",
               "--config.palette.latency_runtime=onnxruntime",
               "--config.palette.latency_threads=1", "--config.palette.latency_batch=3",
               "--config.palette.latency_repeats=2", "--config.palette.latency_warmup=1")
  assert r.returncode == 0, r.stderr[-3000:]
  out = os.path.join(trained, "palettes", "rule-latency-8_12")
  palette_json = os.path.join(out, "palette.json")
  with open(palette_json) as f:
    report = json.load(f)
  table_info = report["latency"].pop("table")
  assert report["latency"] == {"runtime": "onnxruntime", "threads": 1, "warmup": 1,
                               "repeats": 2, "statistic": "median", "batch_sizes": [1, 3],
                               "backend": "cpu"}
  assert table_info["path"] == path and table_info["entries"] == len(table["entries"])
  assert report["metric"] == "latency" and report["budgets"] == [8, 12]
  members = report["models"]
  assert members and all(set(m["latency_ms"]) == {"1", "3"} for m in members)
  for m in members:  # the budget binds the table's figure; latency_ms is measured
    predicted = lut.predict(A.Arch.from_dict(m["arch"]))
    assert m["latency_ms_predicted"] == pytest.approx(predicted, rel=1e-12)
    assert predicted <= m["budget"] and m["latency_ms"]["1"] > 0

  r = _export(palette_json, "--format=onnx")
  assert r.returncode == 0, r.stderr[-3000:]
  r = _export(palette_json, "--format=tflite", "--int8", "--calibration_images=8")
  assert r.returncode == 0, r.stderr[-3000:]
  with open(palette_json) as f:
    exported = json.load(f)["models"]
  with open(os.path.join(out, "palette.csv")) as f:
    rows = list(csv.DictReader(f))
  for m, e, row in zip(members, exported, rows, strict=True):
    ex = e["exports"]
    assert set(ex) == {"onnx", "tflite", "tflite_int8"}
    for fmt, name in (("onnx", "model.onnx"), ("tflite", "model.tflite"),
                      ("tflite_int8", "model_int8.tflite")):
      assert ex[fmt]["path"] == os.path.join(m["export_dir"], name)
      assert os.path.getsize(ex[fmt]["path"]) > 0
      assert float(row[f"top1_{fmt}"]) == ex[fmt]["top1"]
    # Each float runtime reproduces the palette's JAX top-1 on the test split exactly.
    assert ex["onnx"]["top1"] == m["top1"] and ex["tflite"]["top1"] == m["top1"], ex
    assert 0.0 <= ex["tflite_int8"]["top1"] <= 1.0  # reported, not asserted
    assert 0.0 <= ex["tflite_int8"]["agreement_with_float"] <= 1.0
    assert ex["tflite_int8"]["calibration_images"] == 8
    assert f"member {m['member']}: top-1 jax {m['top1']:.6f}, tflite {m['top1']:.6f}, " \
           f"tflite_int8 " in r.stdout
    # LiteRT files carry the class names and preprocessing in a sidecar JSON.
    with open(ex["tflite_int8"]["path"] + ".json") as f:
      side = json.load(f)
    assert side["class_names"] == [str(d) for d in range(10)] and side["quantized"] == "int8"
    assert (side["resolution"], side["batch"], side["crop_fraction"]) == (32, 1, 1.0)



@pytest.mark.heavy(60)
def test_named_palettes_side_by_side_with_exports_and_the_python_api(trained, tmp_path):
  import tofa_jax
  from helpers.model import jit_apply
  from tofa_jax.deploy import onnx_export
  from tofa_jax.search import deployed, palette_store

  cfg = saved_config.get_config(trained)
  for key, value in (("method", "rule"), ("num_budgets", 3), ("latency_batch", 2),
                     ("latency_repeats", 1), ("latency_warmup", 1), ("name", "first")):
    set_key(cfg.palette, key, value)
  reports = [palette.run(cfg, trained, log=lambda _: None)]
  set_key(cfg.palette, "name", "")  # the default: METHOD-METRIC-BUDGETS
  reports.append(palette.run(cfg, trained, log=lambda _: None))
  dirs = {r["name"]: palette_store.palette_dir(trained, r["name"]) for r in reports}
  assert list(dirs) == ["first", "rule-mflops-n3"]
  for d in dirs.values():  # each palette whole in its own folder, members included
    with open(os.path.join(d, "palette.json")) as f:
      rows = json.load(f)["models"]
    assert rows and [m["export_dir"] for m in rows] == [
        os.path.join(d, "models", f"member_{m['member']:02d}") for m in rows]
    assert sorted(os.listdir(os.path.join(d, "models"))) == [
        f"member_{m['member']:02d}" for m in rows]

  # Exports: the older palette by name through the CLI, the newest (the default) in process.
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  r = subprocess.run([sys.executable, "-m", "tofa_jax.export", f"--workdir={trained}",
                      "--palette=first", "--format=onnx", "--evaluate=false"],
                     capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  deployed.export_palette(palette_store.find("", trained), "onnx", evaluate=False,
                          log=lambda _: None)
  for name, d in dirs.items():
    for member in sorted(os.listdir(os.path.join(d, "models"))):
      static = export.load(os.path.join(d, "models", member))
      meta = onnx_export.read_metadata(os.path.join(d, "models", member, "model.onnx"))
      assert meta["class_names"] == [str(c) for c in range(10)], name
      assert (meta["mean"], meta["std"]) == (list(static.mean), list(static.std))
      assert (meta["resolution"], meta["crop_fraction"], meta["resample"]) == (32, 1.0,
                                                                                "bilinear")

  # The Python API: the newest palette by default, any other by name.
  assert tofa_jax.Palette.load(trained).name == "rule-mflops-n3"
  pal = tofa_jax.Palette.load(trained, name="first")
  assert pal.dir == dirs["first"]
  rows = reports[0]["models"]
  for key, cost in (("mflops", lambda m: m["mflops"]), ("params_m", lambda m: m["params_m"]),
                    ("latency_ms", lambda m: m["latency_ms"]["1"])):
    costs = sorted({cost(m) for m in rows})
    for budget in [*costs, costs[-1] * 10, *[(a + b) / 2 for a, b in zip(costs[:-1], costs[1:],
                                                                          strict=True)]]:
      m = pal.member_for(**{key: budget})
      want = max(c for c in costs if c <= budget)  # the largest within the budget
      picked = next(row for row in rows if row["export_dir"] == m.path)
      assert cost(picked) == want and m.arch == A.Arch.from_dict(picked["arch"]), (key, budget)
    with pytest.raises(ValueError, match=rf"^no member of palette 'first' fits {key}<=.*; the "
                                         rf"smallest needs {costs[0]:.4g}$"):
      pal.member_for(**{key: costs[0] * 0.99})

  # predict: names, and the member's stored preprocessing reproduces the palette's top-1.
  m = pal.member_for(mflops=1e9)
  best = next(row for row in rows if row["export_dir"] == m.path)
  test = datasets.bundled("digits", "test")
  ranked = m.predict(test.images, top_k=3)  # uint8 8x8 digits, resized as the palette did
  assert len(ranked) == len(test) and {len(x) for x in ranked} == {3}
  assert all(name == str(c) for x in ranked for name, c, _ in x)
  assert all(x[0][2] >= x[1][2] >= x[2][2] for x in ranked)
  assert np.mean([x[0][1] == y for x, y in zip(ranked, test.labels, strict=True)]) == best["top1"]
  # m(x): jitted, any batch, the logits of the stored member through the existing loader.
  x = m.preprocess(test.images[:5])
  static = export.load(m.path)
  want = np.asarray(jit_apply(static.model)(static.variables, x))
  np.testing.assert_allclose(np.asarray(m(x)), want, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(np.asarray(m(x[:1])), want[:1], rtol=1e-6, atol=1e-6)
  m2 = tofa_jax.load_member(m.path)
  np.testing.assert_allclose(np.asarray(m2(x)), want, rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match=r"^images of shape \(5, 8, 8, 3\); this member takes "
                                       r"\(batch, 32, 32, 3\) float32"):
    m(test.images[:5])

  # python -m tofa_jax.predict ranks an image file as member.predict does (its printed
  # form, `rank. name (class i) p=...`, is checked in tests/weights/convert_test.py).
  from PIL import Image

  from tofa_jax import predict

  image = str(tmp_path / "digit.png")
  Image.fromarray(test.images[0]).save(image)
  assert predict.predict(m.path, image) == m.predict(test.images[0])[0] == m.predict(
      [test.images[0]])[0]


def test_rule_marks_fallbacks_in_its_notes_and_log():
  # Palette._rule on a stub (no training, no compile): the min subnet and three draws.
  space = get_space("tiny")
  mn = sampling.min_arch(space)
  draws = [dataclasses.replace(sampling.sample_arch(space, 0, k), resolution=mn.resolution)
           for k in range(1, 20)]
  draws = [a for a in dict.fromkeys(draws) if a != mn][:3]
  assert len(draws) == 3
  cost = {mn: 1.0, draws[0]: 2.0, draws[1]: 3.0, draws[2]: 4.0}
  last = {mn: 5, draws[0]: 3, draws[1]: 5, draws[2]: 4}
  omega = [(a, {"last": last[a], "score": last[a]}) for a in cost]
  lines = []
  stub = SimpleNamespace(omega=SimpleNamespace(archs=lambda: omega),
                         resolutions=(mn.resolution,), space=space, metric=cost.__getitem__,
                         budgets=[1.5, 3.5, 10.0, 20.0], log=lines.append,
                         pc=ConfigDict({"index": "last", "rule": "bands"}))
  picks, info = palette.Palette._rule(stub)
  assert info == {"rule": "bands", "index": "last"}
  # (-inf, 1.5]: the min alone; (1.5, 3.5]: draw 1 (last 5); (3.5, 10]: draw 2; (10, 20]
  # is empty: the literal pick, draw 1 again.
  assert [p.arch for p in picks] == [mn, draws[1], draws[2], draws[1]]
  assert [p.fallback for p in picks] == [False, False, False, True]
  assert [p.note for p in picks] == ["last=5", "last=5", "last=4", "last=5 (fallback: no "
                                     "subnet of Omega in this budget's size range)"]
  assert len(lines) == 1 and lines[0].startswith("palette: rule, budget 20: no subnet")
  stub.pc.rule = "literal"
  picks, _ = palette.Palette._rule(stub)
  assert [p.arch for p in picks] == [mn, draws[1], draws[1], draws[1]]
  assert not any(p.fallback for p in picks) and len(lines) == 1

"""ONNX and LiteRT export: each runtime's logits equal the JAX static subnet's for every
shipped space (ONNX with a free batch, LiteRT at batch 1 and 3); runtime latency;
python -m tofa_jax.export's errors. The palette-to-file path on a trained run is in
tests/search/palette_test.py."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from helpers.model import images, jit_apply, randomized_variables
from helpers.paths import ROOT
from tofa_jax.deploy import onnx_export, runtime_latency, runtimes, tflite_export
from tofa_jax.model import static_net, supernet
from tofa_jax.runtime import file_integrity
from tofa_jax.search import deployed
from tofa_jax.space import sampling
from tofa_jax.space.search_space import SPACE_NAMES, get_space
from tofa_jax.weights import export, folded_net


def _run(path: str, x: np.ndarray) -> np.ndarray:
  sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
  assert [i.name for i in sess.get_inputs()] == ["images"]
  return sess.run(["logits"], {"images": x})[0]


def _random_subnet(name: str):
  space = dataclasses.replace(get_space(name), resolutions=(72,), mflops_window=None)
  model = supernet.build(space, num_classes=10, depthwise_impl="lax")
  variables = randomized_variables(model, resolution=32)
  arch = sampling.sample_arch(space, seed=7, step=0)
  return space, arch, variables, *static_net.extract(space, arch, variables, 10)


@pytest.mark.heavy(98)
@pytest.mark.parametrize("name", SPACE_NAMES)
def test_onnx_runtime_and_litert_equal_the_static_subnet(name, tmp_path):
  space, arch, _, static, static_vars = _random_subnet(name)
  path = onnx_export.convert(space, arch, static_vars, str(tmp_path / "m.onnx"))
  for batch in (1, 3):  # the ONNX batch dimension is free
    x = np.asarray(images(batch, 72, seed=batch))
    want = np.asarray(jit_apply(static)(static_vars, x))
    assert want.std() > 0.05 or batch == 1
    np.testing.assert_allclose(_run(path, x), want, rtol=1e-4, atol=1e-4 * np.abs(want).max(),
                               err_msg=f"{name}: {arch}")
  x = x[:1]  # LiteRT: a batch-1 model, float
  model = tflite_export.to_bytes(folded_net.subnet_fn(space, arch, static_vars), (72, 72, 3))
  np.testing.assert_allclose(runtimes.tflite_session(model, threads=1)(x), want[:1], rtol=1e-4,
                             atol=1e-4 * np.abs(want).max(), err_msg=f"{name}: {arch}")


def test_sessions_of_every_runtime_agree_at_any_batch():
  space, arch, _, static, static_vars = _random_subnet("tiny_ofa")
  fn = folded_net.subnet_fn(space, arch, static_vars)
  x = np.asarray(images(3, 72, seed=2))
  want = np.asarray(jit_apply(static)(static_vars, x))
  assert want.std() > 0.05
  for rt in runtimes.RUNTIMES:
    sess = runtimes.session(rt, fn, (72, 72, 3), threads=2)
    assert sess.threads == (None if rt == "jax" else 2)
    for batch in (1, 3):  # LiteRT converts a fixed-batch model per batch size
      np.testing.assert_allclose(sess(x[:batch]), want[:batch], rtol=1e-4,
                                 atol=1e-4 * np.abs(want).max(), err_msg=rt)
  with pytest.raises(ValueError, match=r"palette.latency_runtime='tvm' is unknown; choose "
                                       r"one of \['jax', 'onnxruntime', 'tflite'\]"):
    runtimes.session("tvm", fn, (72, 72, 3))


def test_int8_litert_is_quantised_and_close_to_float():
  space, arch, _, static, static_vars = _random_subnet("tiny_lite")
  fn = folded_net.subnet_fn(space, arch, static_vars)
  calib = np.asarray(images(8, 72, seed=3))
  model = tflite_export.to_bytes(fn, (72, 72, 3), calibration=calib)
  from ai_edge_litert.interpreter import Interpreter

  kinds = {d["dtype"] for d in Interpreter(model_content=model).get_tensor_details()}
  assert np.int8 in kinds  # weights and activations in int8; input and output float
  x = np.asarray(images(1, 72, seed=4))
  want = np.asarray(jit_apply(static)(static_vars, x))
  got = runtimes.tflite_session(model, threads=1)(x)
  assert got.dtype == np.float32 and got.shape == want.shape
  assert np.abs(got - want).max() < 0.5 * np.abs(want).max()  # quantised, not garbage
  with pytest.raises(ValueError, match=r"int8 calibration images have shape \(8, 72, 72, 3\);"
                                       r" expected N x 64 x 64 x 3"):
    tflite_export.to_bytes(fn, (64, 64, 3), calibration=calib)


def test_runtime_latency_follows_the_rule_and_records_it(monkeypatch):
  space, arch, variables, _, _ = _random_subnet("tiny")
  calls = []
  meter = runtime_latency.RuntimeLatencyMeter(space, variables, 10, "onnxruntime", threads=1,
                                              repeats=3, warmup=2)
  real = runtimes.session

  def counting(*args, **kwargs):
    sess = real(*args, **kwargs)
    run = sess.run
    sess.run = lambda x: (calls.append(x.shape), run(x))[1]
    return sess

  monkeypatch.setattr(runtimes, "session", counting)
  lat = meter.measure(arch, (1, 4))
  again = meter.measure(arch, (4,))
  # 2 warm-up + 3 timed calls per batch size, each once; a second request is cached.
  assert calls == [(1, 72, 72, 3)] * 5 + [(4, 72, 72, 3)] * 5
  assert set(lat) == {1, 4} and all(v > 0 for v in lat.values()) and again == {4: lat[4]}
  assert meter.describe() == {"runtime": "onnxruntime", "threads": 1, "warmup": 2,
                              "repeats": 3, "statistic": "median"}
  with pytest.raises(ValueError, match=r"palette.latency_threads=0; use at least 1"):
    runtime_latency.RuntimeLatencyMeter(space, variables, 10, "tflite", threads=0)


def test_export_cli_writes_one_onnx_per_member(tmp_path):
  space = get_space("tiny")
  model = supernet.build(space, num_classes=5)
  variables = randomized_variables(model)
  members = []
  for i, arch in enumerate([sampling.min_arch(space), sampling.max_arch(space)]):
    d = str(tmp_path / f"member_{i:02d}")
    export.save(d, space, arch, variables, 5, (0.5,) * 3, (0.25,) * 3,
                class_names=("F/A-18", "Cessna 172", "A300B4", "DC-3", "Ñ"))
    members.append({"member": i, "export_dir": d, "arch": arch.to_dict(),
                    "latency_ms": {"1": 1.0, "8": 2.0}})
  palette = tmp_path / "palette.json"
  palette.write_text(json.dumps({"models": members}))
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  r = subprocess.run([sys.executable, "-m", "tofa_jax.export", f"--palette={palette}",
                      "--format=onnx", "--evaluate=false"], capture_output=True, text=True,
                     env=env, cwd=ROOT, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  assert r.stdout.splitlines() == [f"wrote {m['export_dir']}/model.onnx" for m in members]
  with open(palette) as f:  # the files are recorded in the report
    assert [m.pop("exports") for m in json.load(f)["models"]] == [
        {"onnx": {"path": f"{m['export_dir']}/model.onnx"}} for m in members]
  for m in members:
    static = export.load(m["export_dir"])
    # The file carries what running it needs: names, normalisation, size, resize.
    assert onnx_export.read_metadata(f"{m['export_dir']}/model.onnx") == {
        "class_names": ["F/A-18", "Cessna 172", "A300B4", "DC-3", "Ñ"], "num_classes": 5,
        "mean": [0.5] * 3, "std": [0.25] * 3, "resolution": static.arch.resolution,
        "crop_fraction": 1.0, "resample": "bilinear",
        "input": f"images: float32 NHWC (batch, {static.arch.resolution}, "
                 f"{static.arch.resolution}, 3), RGB on [0, 1] then (x - mean) / std",
        "output": "logits: float32 (batch, num_classes)"}
    x = np.asarray(images(2, static.arch.resolution, seed=1))
    np.testing.assert_allclose(_run(f"{m['export_dir']}/model.onnx", x),
                               np.asarray(jit_apply(static.model)(static.variables, x)),
                               rtol=1e-4, atol=1e-5)


def test_export_errors_name_the_file_or_member(tmp_path):
  with pytest.raises(ValueError, match=r"--format='coreml' is unknown; choose one of "
                                       r"\['onnx', 'tflite'\]"):
    deployed.export_palette(str(tmp_path / "palette.json"), "coreml")
  with pytest.raises(ValueError, match=r"--int8 applies to --format=tflite, not 'onnx'"):
    deployed.export_palette(str(tmp_path / "palette.json"), "onnx", int8=True)
  with pytest.raises(ValueError, match=r"--palette=.*/nowhere.json: no such file"):
    deployed.export_palette(str(tmp_path / "nowhere.json"), "onnx")
  palette = tmp_path / "palette.json"
  palette.write_text(json.dumps({"models": [{"member": 3}]}))
  with pytest.raises(ValueError, match=r"member 3 has no static model directory \(None\); run "
                                       r"the palette with palette.export=True"):
    deployed.export_palette(str(palette), "onnx")
  member = tmp_path / "member_00"  # a member at a resolution its space does not have
  space = get_space("tiny")
  export.save(str(member), space, sampling.min_arch(space),
              randomized_variables(supernet.build(space, num_classes=5)), 5, (0.5,) * 3,
              (0.25,) * 3)
  meta = json.loads((member / "meta.json").read_text())
  meta["arch"]["resolution"] = 100
  (member / "meta.json").write_text(json.dumps(meta))
  file_integrity.seal(member)  # consistent, as if another version had written it
  palette.write_text(json.dumps({"models": [{"member": 0, "export_dir": str(member)}]}))
  with pytest.raises(ValueError, match=r"member 0 \(.*/member_00\): arch.resolution=100 is "
                                       r"outside the space; allowed values: \[32, 40\]"):
    deployed.export_palette(str(palette), "onnx")
  assert not (member / "model.onnx").exists()
  palette.write_text(json.dumps({"workdir": str(tmp_path / "gone"), "models": []}))
  with pytest.raises(ValueError, match=r"its run's config cannot be read .*no config.json.*"
                                       r"pass --evaluate=false"):
    deployed.export_palette(str(palette), "onnx")

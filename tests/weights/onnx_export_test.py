"""ONNX export: ONNX Runtime's logits equal the JAX static subnet's for every shipped
space, with a free batch size; python -m tofa_jax.export on a palette.json."""

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
from tofa_jax import export as export_cli
from tofa_jax.model import static_net, supernet
from tofa_jax.space import sampling
from tofa_jax.space.search_space import SPACE_NAMES, get_space
from tofa_jax.weights import export, onnx_export


def _run(path: str, x: np.ndarray) -> np.ndarray:
  sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
  assert [i.name for i in sess.get_inputs()] == ["images"]
  return sess.run(["logits"], {"images": x})[0]


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_onnx_runtime_equals_the_static_subnet(name, tmp_path):
  space = dataclasses.replace(get_space(name), resolutions=(72,), mflops_window=None)
  model = supernet.build(space, num_classes=10, depthwise_impl="lax")
  variables = randomized_variables(model, resolution=32)
  arch = sampling.sample_arch(space, seed=7, step=0)
  static, static_vars = static_net.extract(space, arch, variables, 10)
  path = onnx_export.convert(space, arch, static_vars, str(tmp_path / "m.onnx"))
  for batch in (1, 3):  # the batch dimension is free
    x = np.asarray(images(batch, 72, seed=batch))
    want = np.asarray(jit_apply(static)(static_vars, x))
    assert want.std() > 0.05 or batch == 1
    np.testing.assert_allclose(_run(path, x), want, rtol=1e-4, atol=1e-4 * np.abs(want).max(),
                               err_msg=f"{name}: {arch}")


def test_export_cli_writes_one_onnx_per_member(tmp_path):
  space = get_space("tiny")
  model = supernet.build(space, num_classes=5)
  variables = randomized_variables(model)
  members = []
  for i, arch in enumerate([sampling.min_arch(space), sampling.max_arch(space)]):
    d = str(tmp_path / f"member_{i:02d}")
    export.save(d, space, arch, variables, 5, (0.5,) * 3, (0.25,) * 3)
    members.append({"member": i, "export_dir": d})
  palette = tmp_path / "palette.json"
  palette.write_text(json.dumps({"models": members}))
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  r = subprocess.run([sys.executable, "-m", "tofa_jax.export", f"--palette={palette}",
                      "--format=onnx"], capture_output=True, text=True, env=env, cwd=ROOT,
                     timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  assert r.stdout.splitlines() == [f"wrote {m['export_dir']}/model.onnx" for m in members]
  for m in members:
    static = export.load(m["export_dir"])
    x = np.asarray(images(2, static.arch.resolution, seed=1))
    np.testing.assert_allclose(_run(f"{m['export_dir']}/model.onnx", x),
                               np.asarray(jit_apply(static.model)(static.variables, x)),
                               rtol=1e-4, atol=1e-5)


def test_export_errors_name_the_file_or_member(tmp_path):
  with pytest.raises(ValueError, match=r"--format='coreml' is unknown; choose one of \['onnx'\]"):
    export_cli.export_palette(str(tmp_path / "palette.json"), "coreml")
  with pytest.raises(ValueError, match=r"--palette=.*/nowhere.json: no such file"):
    export_cli.export_palette(str(tmp_path / "nowhere.json"), "onnx")
  palette = tmp_path / "palette.json"
  palette.write_text(json.dumps({"models": [{"member": 3}]}))
  with pytest.raises(ValueError, match=r"member 3 has no static model directory \(None\); run "
                                       r"the palette with palette.export=True"):
    export_cli.export_palette(str(palette), "onnx")

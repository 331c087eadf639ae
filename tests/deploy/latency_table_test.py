"""Latency tables: the enumeration covers every subnet's layers, predictions add up the
entries, files round-trip and are checked, and a real build and the CLI work."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers.paths import ROOT
from tofa_jax.deploy import latency_table as lt
from tofa_jax.space import arch as arch_lib
from tofa_jax.space import sampling
from tofa_jax.space.search_space import SPACE_NAMES, get_space

CLASSES = 7


def _keys(space, arch, num_classes=CLASSES) -> list[str]:
  return [layer.key for layer in lt.layers(space, arch, num_classes)]


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_every_subnet_layer_is_enumerated(name):
  space = get_space(name)
  table = lt.enumerate_layers(space, CLASSES)
  archs = [sampling.sample_arch(space, 0, i) for i in range(50)]
  archs += [sampling.min_arch(space), sampling.max_arch(space)]
  missing = {k for a in archs for k in _keys(space, a)} - set(table)
  assert not missing, f"{name}: {sorted(missing)[:5]}"


def _every_arch(space):
  """Every subnet of a per-stage space (tiny: 24,576), by brute force."""
  per_stage = [list(itertools.product(st.depths, st.kernels, st.expansions))
               for st in space.stages]
  for res, width, stages in itertools.product(space.resolutions,
                                              itertools.product(*space.width_choices),
                                              itertools.product(*per_stage)):
    yield arch_lib.Arch(res, width, tuple(d for d, _, _ in stages),
                        tuple((k,) * d for d, k, _ in stages),
                        tuple((e,) * d for d, _, e in stages))


def test_tiny_enumeration_is_exactly_the_layers_its_subnets_use():
  space = get_space("tiny")
  reached = {k for a in _every_arch(space) for k in _keys(space, a)}
  table = lt.enumerate_layers(space, CLASSES)
  assert set(table) == reached
  # By hand, per resolution: stems 2, heads 2 x 2, blocks: stage 0 (stride 1, no expand)
  # 2 x 2 x 2 first layers, of which the 2 x 2 with c_in == c_out are its later layers,
  # plus 2 x 2 others; stages 1 and 2: 2 x 2 x 2 x 2 first layers + 2 x 2 x 2 later.
  assert len(table) == 2 * (2 + 4 + (8 + 0) + (16 + 8) + (16 + 8))


def _fake_build(monkeypatch, space, resolutions=(32,), num_classes=CLASSES):
  """A build whose timings are known: each layer's ms is a function of its input shape."""
  def fake_time(runtime, fn, hwc, threads, warmup, repeats, rng):
    return 0.05 if hwc == (1, 1, 8) else 0.01 * hwc[2] + 0.001 * hwc[0]

  monkeypatch.setattr(lt, "time_fn", fake_time)
  return lt.build(space, "onnxruntime", 1, num_classes, 1, 1, resolutions, log=lambda s: None)


def test_predict_is_the_overhead_plus_each_layers_excess(monkeypatch):
  space = get_space("tiny")
  table = lt.LatencyTable(_fake_build(monkeypatch, space), space)
  assert table.overhead_ms == 0.05
  arch = dataclasses.replace(sampling.max_arch(space), resolution=32)
  layers = lt.layers(space, arch, CLASSES)
  table.entries[layers[0].key] = 0.02  # under the overhead: counts as zero, not negative
  excess = [0.01 * x.c_in + 0.001 * x.size - 0.05 for x in layers[1:]]
  assert table.predict(arch) == pytest.approx(0.05 + sum(excess))
  assert [k for k, _ in table.breakdown(arch)] == [x.key for x in layers]


def test_json_round_trip(monkeypatch, tmp_path):
  space = get_space("tiny_ofa")
  built = _fake_build(monkeypatch, space)
  path = lt.save(built, str(tmp_path / "lut.json"))
  with open(path) as f:
    assert json.load(f) == built
  arch = dataclasses.replace(sampling.sample_arch(space, 3, 0), resolution=32)
  loaded = lt.load(path, space, CLASSES)
  assert loaded.predict(arch) == lt.LatencyTable(built, space).predict(arch)
  own = lt.load(path)  # the space from the file's own definition
  assert own.space == space and own.predict(arch) == loaded.predict(arch)
  info = loaded.describe()
  assert info["space"] == "tiny_ofa" and info["entries"] == len(built["entries"])
  assert info["threads"] == 1 and info["host"]["node"]


def _error(fn) -> str:
  with pytest.raises(ValueError) as e:
    fn()
  msg = str(e.value)
  assert "\n" not in msg
  return msg


def test_errors_name_the_file_and_what_to_do(monkeypatch, tmp_path):
  space = get_space("tiny")
  path = lt.save(_fake_build(monkeypatch, space), str(tmp_path / "lut.json"))
  missing = str(tmp_path / "nope.json")
  assert missing in _error(lambda: lt.load(missing, space)) and "no such file" in _error(
      lambda: lt.load(missing))
  other = tmp_path / "other.json"
  other.write_text(json.dumps({"entries": {}}))
  assert "not a latency table" in _error(lambda: lt.load(str(other), space))
  msg = _error(lambda: lt.load(path, get_space("tiny_ofa")))
  assert path in msg and "'tiny'" in msg and "'tiny_ofa'" in msg
  changed = dataclasses.replace(space, stem_act="relu")
  assert "another definition" in _error(lambda: lt.load(path, changed))
  # Resolutions and the MFLOPs window change no layer: the table still fits.
  lt.load(path, dataclasses.replace(space, resolutions=(40,), mflops_window=(1.0, 2.0)))
  assert "--num_classes=3" in _error(lambda: lt.load(path, space, 3))
  table = lt.load(path, space, CLASSES)
  arch = dataclasses.replace(sampling.max_arch(space), resolution=40)
  msg = _error(lambda: table.predict(arch))
  assert path in msg and "'stem r40 3>16'" in msg and "--resolutions=40" in msg


def test_cli_builds_a_real_table_for_tiny(tmp_path):
  out = tmp_path / "lut.json"
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT}/tests")
  r = subprocess.run([sys.executable, "-m", "tofa_jax.latency_table",
                      "--config=tests/helpers/tiny_run_config.py", f"--out={out}",
                      "--runtime=onnxruntime", "--threads=1", "--resolutions=32",
                      "--warmup=1", "--repeats=2"],
                     capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "62/62 timed" in r.stdout + r.stderr
  space = get_space("tiny")
  table = lt.load(str(out), space, 10)  # the config's dataset (digits) has 10 classes
  assert set(table.entries) == set(lt.enumerate_layers(space, 10, (32,)))
  assert all(ms > 0 for ms in table.entries.values())
  assert table.table["threads"] == 1 and table.table["repeats"] == 2
  assert table.table["versions"]["onnxruntime"] != "not installed"
  small = dataclasses.replace(sampling.min_arch(space), resolution=32)
  big = dataclasses.replace(sampling.max_arch(space), resolution=32)
  assert all(np.isfinite(table.predict(a)) and table.predict(a) > 0 for a in (small, big))

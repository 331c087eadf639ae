"""benchmarks/device_check.sh: its --smoke run prints every figure once, each a number."""

import collections
import math
import os
import subprocess
import sys

import pytest

from helpers.paths import ROOT

SCRIPT = os.path.join(ROOT, "benchmarks", "device_check.sh")
STEP = ("compile_s", "compiled_gib", "step_s", "images_per_s")
PARTS = ("base", "conditional_on", "conditional_on_cmdbuf", "remat_none", "dtype_float32",
         "depthwise_shift")
HEADER = ("python", "jax", "jaxlib", "flax", "optax", "devices", "device_kind", "backend")


def _expected() -> list[str]:
  keys = [f"program_{p}_{k}" for p in ("teacher_32", "subnet_32", "update")  # the sandwich's
          for k in ("compile_s", "compiled_gib")]
  keys += [f"{part}_{k}" for part in PARTS for k in STEP]
  keys += [f"{part}_{k}_subnet_s" for part in ("base", "conditional_on") for k in ("min", "max")]
  keys += ["augment_strong_32_images_per_s", "device_check_s"]
  if os.path.exists(os.path.join(ROOT, "benchmarks", "input_pipeline.py")):
    keys += ["input_images_per_s", "input_per_core"]
  return keys


@pytest.mark.heavy(129)
def test_smoke_prints_every_figure_once_as_a_number():
  # --budget: the script's own 290 s is for a quiet 2-core machine (about 190 s of CPU
  # at -O0 in tiny_lite, two parts at a time); a shared one gets more time rather than
  # `=error` figures.
  # PYTHON: this interpreter (the script's default is the `python` on PATH, which outside
  # an activated venv is not the one with the project installed).
  r = subprocess.run(["bash", SCRIPT, "--smoke", "--budget=1500"], capture_output=True,
                     text=True, cwd=ROOT, timeout=1800,
                     env=dict(os.environ, PYTHON=sys.executable))
  assert r.returncode == 0, r.stderr[-2000:]
  lines = [ln for ln in r.stdout.splitlines() if "=" in ln and not ln.startswith("#")]
  assert not [ln for ln in lines if ln.endswith("=error")], r.stdout
  pairs = [ln.split("=", 1) for ln in lines]
  counts = collections.Counter(k for k, _ in pairs)
  values = dict(pairs)
  for key in _expected():
    assert counts[key] == 1, (key, counts[key], r.stdout)
    assert math.isfinite(float(values[key])) and float(values[key]) >= 0, (key, values[key])
  for key in HEADER:
    assert counts[key] == 1, key
  assert values["backend"] == "cpu"
  if not os.path.exists(os.path.join(ROOT, "benchmarks", "input_pipeline.py")):
    assert values["input"] == "missing"


def test_bad_arguments_are_named():
  r = subprocess.run(["bash", SCRIPT, "--smok"], capture_output=True, text=True, cwd=ROOT,
                     timeout=60)
  assert r.returncode == 2 and "unknown argument '--smok'" in r.stderr
  assert "--smoke" in r.stderr and "--wheels=DIR" in r.stderr
  r = subprocess.run(["bash", SCRIPT, "--wheels=/nonexistent/wheels"], capture_output=True,
                     text=True, cwd=ROOT, timeout=60)
  assert r.returncode == 2 and "--wheels=/nonexistent/wheels is not a directory" in r.stderr

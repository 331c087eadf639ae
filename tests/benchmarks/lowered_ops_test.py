"""benchmarks/lowered_ops.py: one line per train program, its counts equal to those of
an independent walk of the dumped StableHLO (MLIR's parser, not the script's regex)."""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys

import pytest
from jax._src.interpreters import mlir
from jax._src.lib.mlir import ir

from helpers.configs import tiny_config
from helpers.paths import ROOT
from tofa_jax.space import search_space
from tofa_jax.train import programs

_LINE = re.compile(r"^program=(\w+) resolution=(\d+) platform=cuda conditionals=(\d+) "
                   r"all_reduces=(\d+) while_loops=(\d+)$")
_STEP = re.compile(r"^step resolution=(\d+) subnets=(\d+) calls=(\d+) conditionals=(\d+) "
                   r"all_reduces=(\d+) while_loops=(\d+)$")


def _run(*flags: str) -> list[str]:
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
  r = subprocess.run([sys.executable, "benchmarks/lowered_ops.py",
                      "--config=tests/helpers/tiny_run_config.py", "--platform=cuda", *flags],
                     capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
  assert r.returncode == 0, r.stderr
  return r.stdout.splitlines()


def _walk(path: str) -> collections.Counter:
  """Every op of the module by name, found by parsing it."""
  with open(path) as f:
    module = ir.Module.parse(f.read(), context=mlir.make_ir_context())
  names = collections.Counter()

  def visit(op):
    names[op.name] += 1
    for region in op.regions:
      for block in region.blocks:
        for child in block.operations:
          visit(child.operation)

  visit(module.operation)
  return names


@pytest.mark.heavy(40)
def test_one_line_per_program_with_the_module_counts(tmp_path):
  out = _run("--devices=2", f"--dump={tmp_path}", "--config.model.conditional=on",
             "--config.model.resolutions=(32,40)")
  assert out[0].startswith("space=tiny classes=10 devices=2 programs=4 platform=cuda")
  rows = [_LINE.match(x) for x in out[1:5]]
  assert all(rows), out
  assert [(m.group(1), int(m.group(2))) for m in rows] == [
      ("teacher", 40), ("subnet", 32), ("subnet", 40), ("update", 0)]
  assert sorted(os.listdir(tmp_path)) == ["subnet_32.mlir", "subnet_40.mlir", "teacher_40.mlir",
                                          "update_0.mlir"]
  counts = {}
  for m in rows:
    ops = _walk(str(tmp_path / f"{m.group(1)}_{m.group(2)}.mlir"))
    counts[m.group(1), int(m.group(2))] = [int(m.group(i)) for i in (3, 4, 5)]
    assert counts[m.group(1), int(m.group(2))] == [
        ops["stablehlo.case"] + ops["stablehlo.if"], ops["stablehlo.all_reduce"],
        ops["stablehlo.while"]]
  # Depth and kernel choices are conditionals and the scanned layers loops in every
  # network program; BN moments are all-reduced over the 2 devices in each, and the
  # update all-reduces the gradient (one vector per dtype: f32) and nothing else runs.
  for key in [("teacher", 40), ("subnet", 32), ("subnet", 40)]:
    assert all(v > 0 for v in counts[key]), key
  assert counts["update", 0] == [0, 1, 0]
  # A step: the teacher, the min at 32 px, 2 random subnets at the step's px, the update.
  steps = [_STEP.match(x) for x in out[5:]]
  assert all(steps) and len(steps) == 2, out
  for m in steps:
    res = int(m.group(1))
    calls = [("teacher", 40), ("subnet", 32), ("subnet", res), ("subnet", res), ("update", 0)]
    assert (int(m.group(2)), int(m.group(3))) == (3, 5)
    assert [int(m.group(i)) for i in (4, 5, 6)] == [
        sum(counts[c][i] for c in calls) for i in range(3)]


@pytest.mark.heavy(30)
def test_no_conditionals_on_cuda_by_default():
  cfg = tiny_config(**{"model.conditional": "off"})
  space = search_space.resolve(cfg.model)
  if programs.model_of(cfg, space, 10).conditional not in (
      False, "off"):
    pytest.skip("supernet.from_config does not read model.conditional yet")
  out = _run()  # model.conditional=auto: off on cuda
  assert "model.conditional=off" in out[0]
  assert [_LINE.match(x).group(3) for x in out[1:4]] == ["0", "0", "0"]
  assert [_STEP.match(x).group(4) for x in out[4:]] == ["0"]

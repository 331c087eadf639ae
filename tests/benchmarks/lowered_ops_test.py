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

_LINE = re.compile(r"^program=train_step resolution=(\d+) platform=cuda conditionals=(\d+) "
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
  assert out[0].startswith("space=tiny classes=10 devices=2 programs=2 platform=cuda")
  rows = [_LINE.match(x) for x in out[1:]]
  assert all(rows), out
  assert [int(m.group(1)) for m in rows] == [32, 40]
  assert sorted(os.listdir(tmp_path)) == ["train_step_32.mlir", "train_step_40.mlir"]
  for m in rows:
    ops = _walk(str(tmp_path / f"train_step_{m.group(1)}.mlir"))
    assert [int(m.group(i)) for i in (2, 3, 4)] == [
        ops["stablehlo.case"] + ops["stablehlo.if"], ops["stablehlo.all_reduce"],
        ops["stablehlo.while"]]
    # Depth and kernel choices are conditionals; BN moments and the gradient are
    # all-reduced over the 2 devices; the subnets and scanned layers are loops.
    assert all(int(m.group(i)) > 0 for i in (2, 3, 4)), m.group(0)


@pytest.mark.heavy(30)
def test_no_conditionals_on_cuda_by_default():
  cfg = tiny_config(**{"model.conditional": "off"})
  space = search_space.resolve(cfg.model)
  if programs.model_of(cfg, space, 10).conditional not in (
      False, "off"):
    pytest.skip("supernet.from_config does not read model.conditional yet")
  out = _run()  # model.conditional=auto: off on cuda
  assert "model.conditional=off" in out[0]
  assert [_LINE.match(x).group(2) for x in out[1:]] == ["0"]

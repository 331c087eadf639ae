"""model.bn_sync='device': per-device BN statistics in the data-parallel step."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers.paths import ROOT
from helpers.xla_env import xla_flags


@pytest.mark.heavy(60)
def test_device_bn_statistics_are_the_mean_of_each_shards(tmp_path):
  """The step's new statistics (a teacher-less step's, and a sandwich's) equal the mean
  over the 8 devices of the statistics each computes on its own 2 images, identical on
  every device, and differ from the global batch's (what bn_sync='global' keeps)."""
  out = tmp_path / "result.json"
  env = dict(os.environ, XLA_FLAGS=xla_flags("--xla_force_host_platform_device_count=8"),
             JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
  subprocess.run([sys.executable, os.path.join(ROOT, "tests", "model", "bn_sync_check.py"),
                  str(out)], check=True, env=env, timeout=900)
  r = json.loads(out.read_text())
  assert r["devices"] == 8
  assert r["stats_diff"] <= 1e-6
  assert r["sandwich_stats_diff"] <= 1e-6
  assert r["device_spread"] == 0.0
  assert r["global_diff"] > 1e-3

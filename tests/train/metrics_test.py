"""StepMetrics (device-side interval means and the first non-finite loss) and
Throughput (rates without compile time)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from tofa_jax.runtime import progress
from tofa_jax.train import metrics as metrics_lib


def _step(loss: float, lr: float) -> dict:
  return {"loss": jnp.float32(loss), "lr": jnp.float32(lr)}


def test_means_are_per_interval_and_the_first_non_finite_loss_is_located():
  tracker = metrics_lib.StepMetrics(start_step=10)
  assert tracker.first_non_finite() is None and tracker.means(10) == {}
  for loss, lr in [(1.0, 0.5), (2.0, 0.25), (4.5, 0.125)]:  # steps 11, 12, 13
    tracker.add(_step(loss, lr))
  assert tracker.first_non_finite() is None
  got = tracker.means(13)
  assert got == pytest.approx({"loss": 7.5 / 3, "lr": 0.875 / 3}, rel=1e-6)
  for loss in [3.0, np.inf, np.nan, 1.0]:  # steps 14..17: 15 is the first bad one
    tracker.add(_step(loss, 0.0))
  assert tracker.first_non_finite() == (15, np.inf)
  tracker.means(17)
  tracker.add(_step(np.nan, 0.0))  # step 18
  step, loss = tracker.first_non_finite()
  assert step == 18 and np.isnan(loss)


def test_throughput_leaves_out_excluded_seconds(monkeypatch):
  now = [100.0]
  monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
  speed = metrics_lib.Throughput(start_step=4, total_steps=104, images_per_step=32)
  now[0] += 70.0  # 10 steps in 20 s, plus a 50 s compile
  speed.exclude(50.0)
  assert speed.report(14) == pytest.approx(
      {"steps_per_s": 0.5, "images_per_s": 16.0, "eta_min": 90 * 2 / 60})
  now[0] += 5.0  # the next 10 steps take 0.5 s each; nothing excluded any more
  assert speed.report(24)["steps_per_s"] == pytest.approx(2.0)
  assert speed.report(24) == {}  # no steps since the last report


def test_writer_prints_one_line_per_write_and_nothing_for_no_scalars(tmp_path, capsys):
  writer = metrics_lib.Writer(str(tmp_path))
  writer.write_scalars(12, {}, prefix="eval/")  # a run evaluating no subnets
  writer.write_scalars(12, {"top1_max": 0.5, "loss": 123456.0}, prefix="eval/")
  writer.close()
  assert capsys.readouterr().out == "step 12  eval/top1_max=0.5  eval/loss=1.235e+05\n"

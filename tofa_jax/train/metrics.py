"""Metric writing: TensorBoard event files plus console lines.

clu's `metric_writers` package imports TensorFlow when it is imported (its
`SummaryWriter` module does `import tensorflow`), and TensorFlow is only an
optional extra here, so the events are written with tensorboardX behind the
same `write_scalars(step, {name: value})` interface. Only process 0 writes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping


class Writer:
  """TensorBoard scalars in `workdir/tb` and a console line per write."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self._tb = None
    if enabled:
      from tensorboardX import SummaryWriter

      self._tb = SummaryWriter(os.path.join(workdir, "tb"), flush_secs=10)

  def write_scalars(self, step: int, scalars: Mapping[str, float], prefix: str = "") -> None:
    if not self.enabled:
      return
    for k, v in scalars.items():
      self._tb.add_scalar(f"{prefix}{k}", float(v), step)
    text = "  ".join(f"{prefix}{k}={_fmt(v)}" for k, v in scalars.items())
    print(f"step {step}  {text}", flush=True)

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _fmt(v: float) -> str:
  v = float(v)
  return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"


class Throughput:
  """Images/s and ETA over the steps since the last report."""

  def __init__(self, total_steps: int, images_per_step: int):
    self.total, self.per_step = total_steps, images_per_step
    self.t, self.step = time.perf_counter(), None

  def report(self, step: int) -> dict[str, float]:
    now = time.perf_counter()
    if self.step is None or step <= self.step:
      self.t, self.step = now, step
      return {}
    dt = (now - self.t) / (step - self.step)
    self.t, self.step = now, step
    return {"images_per_s": self.per_step / dt, "eta_min": (self.total - step) * dt / 60}

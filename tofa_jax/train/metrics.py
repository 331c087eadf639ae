"""Metrics: kept on device between log steps, written as TensorBoard events and
console lines, with the run's rate and ETA (`runtime/progress.py`).

clu's `metric_writers` package imports TensorFlow when it is imported (its
`SummaryWriter` module does `import tensorflow`), and TensorFlow is only an
optional extra here, so the events are written with tensorboardX behind the
same `write_scalars(step, {name: value})` interface. Only process 0 writes.

`StepMetrics` sums each step's metrics on device (an asynchronous dispatch), so
the loop reaches the host only at log and checkpoint steps: then it reads the
interval's means and the first step whose loss was not finite.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from tofa_jax.runtime import progress
from tofa_jax.train.step_log import StepLog


@jax.jit
def _first(metrics):
  loss = metrics["loss"]
  bad = jnp.where(jnp.isfinite(loss), -1, 0).astype(jnp.int32)
  return {"sums": metrics, "count": jnp.ones((), jnp.int32), "bad": bad, "bad_loss": loss}


@jax.jit
def _add(acc, metrics):
  count, loss = acc["count"], metrics["loss"]
  new_bad = (acc["bad"] < 0) & ~jnp.isfinite(loss)
  return {"sums": jax.tree.map(jnp.add, acc["sums"], metrics), "count": count + 1,
          "bad": jnp.where(new_bad, count, acc["bad"]),
          "bad_loss": jnp.where(new_bad, loss, acc["bad_loss"])}


class StepMetrics:
  """The train step's metrics since the last log step, on device.

  `add` queues one small computation and never waits. `first_non_finite` and
  `means` wait for the steps added so far; `means` also starts a new interval.
  """

  def __init__(self, start_step: int):
    self._acc, self._start = None, start_step  # steps after `_start` are in `_acc`

  def add(self, metrics: Mapping[str, jax.Array]) -> None:
    self._acc = _first(metrics) if self._acc is None else _add(self._acc, metrics)

  def first_non_finite(self) -> tuple[int, float] | None:
    """(step counted from 1, loss) of this interval's first loss that was inf or nan."""
    if self._acc is None:
      return None
    bad = int(self._acc["bad"])
    return None if bad < 0 else (self._start + bad + 1, float(self._acc["bad_loss"]))

  def means(self, step: int) -> dict[str, float]:
    """Each metric's mean over the steps added since the last call; `step` is the
    last of them."""
    if self._acc is None:
      return {}
    acc = jax.device_get(self._acc)
    self._acc, self._start = None, step
    return {k: float(v) / int(acc["count"]) for k, v in acc["sums"].items()}


class Writer:
  """TensorBoard scalars in `workdir/tb`, a console line per write and, with `log`, a
  line of `log` (workdir/metrics.jsonl) per write."""

  def __init__(self, workdir: str, enabled: bool = True, log: StepLog | None = None):
    self.enabled, self._log = enabled, log
    self._tb = None
    if enabled:
      from tensorboardX import SummaryWriter

      # A queue longer than tensorboardX's 10: a writer thread that died (a full disk)
      # must not block the next write before the loop stops (`Checkpointer.check`).
      self._tb = SummaryWriter(os.path.join(workdir, "tb"), flush_secs=10, max_queue=10_000)

  def write_scalars(self, step: int, scalars: Mapping[str, float], prefix: str = "") -> None:
    if not self.enabled or not scalars:
      return
    for k, v in scalars.items():
      self._tb.add_scalar(f"{prefix}{k}", float(v), step)
    if self._log is not None:
      self._log.write(step, {f"{prefix}{k}": float(v) for k, v in scalars.items()})
    text = "  ".join(f"{prefix}{k}={_fmt(v)}" for k, v in scalars.items())
    print(f"step {step}  {text}", flush=True)

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()
    if self._log is not None:
      self._log.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _fmt(v: float) -> str:
  v = float(v)
  return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"


class Throughput:
  """Steps/s, images/s and ETA over the steps since the last report, not counting
  the seconds spent compiling (`exclude`)."""

  def __init__(self, start_step: int, total_steps: int, images_per_step: int):
    self.per_step = images_per_step
    self._progress = progress.Progress(total_steps, done=start_step)

  def exclude(self, seconds: float) -> None:
    self._progress.exclude(seconds)

  def report(self, step: int) -> dict[str, float]:
    """Call once the steps up to `step` have finished (after reading their metrics)."""
    rate = self._progress.since_last(step)
    if rate.per_s == 0:
      return {}
    return {"steps_per_s": rate.per_s, "images_per_s": self.per_step * rate.per_s,
            "eta_min": rate.left_s / 60}

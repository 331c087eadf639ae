"""Optimiser and learning-rate schedule of TOFA section 4.2.

SGD with momentum, a linear warm-up over `optim.warmup_steps` steps or
`optim.warmup_epochs` epochs (`epochs.py` says what an epoch is), then cosine decay to 0
(`optim.schedule='cosine'`, TOFA) or a constant lr (`'constant'`, RSS 6.3.2's
two-subnet study). Weight decay on weight matrices/kernels only: biases and BatchNorm
scale/bias (all 1-D) are not decayed.
Weight decay is added to the gradient before momentum, as PyTorch's
`SGD(weight_decay=...)` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import optax

from tofa_jax.train import epochs

SCHEDULES = ("cosine", "constant")


def decay_mask(params: Any) -> Any:
  """True for leaves that get weight decay: every array with more than one axis."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def schedule(cfg: Mapping[str, Any], steps_per_epoch: int, total_steps: int) -> optax.Schedule:
  """Linear warm-up over `warmup_steps` steps or `warmup_epochs` epochs (at most half of
  the run, `epochs.run_warmup`) to `lr`, then cosine decay to 0 or, with
  `schedule='constant'`, `lr` to the end."""
  warmup = epochs.run_warmup(cfg, steps_per_epoch, total_steps)
  kind = cfg.get("schedule", "cosine")  # configs saved before the key: cosine
  if kind not in SCHEDULES:
    raise ValueError(f"optim.schedule={kind!r} is unknown; choose one of {list(SCHEDULES)}")
  if kind == "constant":
    return optax.join_schedules(
        [optax.linear_schedule(0.0, cfg["lr"], max(warmup, 1)),
         optax.constant_schedule(cfg["lr"])], [warmup])
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=cfg["lr"], warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1), end_value=0.0)


def make(cfg: Mapping[str, Any], steps_per_epoch: int, total_steps: int
         ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(optimiser, schedule) from `config.optim` (lr, momentum, weight_decay, warmup_epochs
  or warmup_steps, schedule)."""
  sched = schedule(cfg, steps_per_epoch, total_steps)
  tx = optax.chain(
      optax.add_decayed_weights(cfg["weight_decay"], mask=decay_mask),
      optax.sgd(sched, momentum=cfg["momentum"]),
  )
  return tx, sched

"""What an epoch is, in steps, and the warm-up it sets: computed here and nowhere else.

TOFA gives 5 warm-up epochs and 10,000 iterations but does not define an epoch. Ours is
one pass over the run's training data D_tr, the set its loss sums over (TOFA eq. 3-4):
- a run whose loss uses unlabelled images: the labelled and the unlabelled training
  images, at the images one step takes (`train.batch_size` +
  `train.unlabelled_batch_size`);
- a fully labelled run, or a variant with no unlabelled term: the labelled images at
  `train.batch_size`.
The warm-up (`optim.warmup_epochs`) and every per-epoch sampling scheme (`rss_epoch`,
`min_then_max`, `max_then_min`, `alternating`) count in these epochs. A warm-up longer
than half of the run is fitted to half of it, with one line that says so.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Epoch:
  """One pass over D_tr: `images` training images, `per_step` of them per step."""

  images: int
  per_step: int
  semi_supervised: bool  # D_tr holds the unlabelled images too

  @property
  def steps(self) -> int:
    return max(1, math.ceil(self.images / self.per_step))

  def describe(self) -> str:
    what = "labelled + unlabelled" if self.semi_supervised else "labelled"
    return (f"an epoch is {self.steps} steps ({self.images} {what} training images, "
            f"{self.per_step} per step)")


def of_run(num_labelled: int, num_unlabelled: int, batch_size: int,
           unlabelled_batch_size: int, uses_unlabelled: bool) -> Epoch:
  """The run's epoch, from its data sizes, batches and whether its loss uses unlabelled
  images (`StepConfig.uses_unlabelled`)."""
  if uses_unlabelled:
    return Epoch(num_labelled + num_unlabelled, batch_size + unlabelled_batch_size, True)
  return Epoch(num_labelled, batch_size, False)


def warmup_steps(warmup_epochs: float, epoch_steps: int) -> int:
  """`optim.warmup_epochs` in steps (rounded to the nearest step)."""
  return int(round(warmup_epochs * epoch_steps))


def run_warmup(warmup_epochs: float, epoch_steps: int, total_steps: int) -> int:
  """The warm-up a run of `total_steps` steps takes: `optim.warmup_epochs` in steps, or
  half of the run where that is longer (a short run: a demo, a smoke test). Runs at least
  twice their warm-up, every one that trained before this fit, keep it unchanged."""
  return min(warmup_steps(warmup_epochs, epoch_steps), total_steps // 2)


def fitted_warmup_note(warmup_epochs: float, epoch: Epoch, total_steps: int) -> str | None:
  """The one line that says the warm-up was fitted to a short run, or None when it was not."""
  steps = warmup_steps(warmup_epochs, epoch.steps)
  fitted = run_warmup(warmup_epochs, epoch.steps, total_steps)
  if fitted == steps:
    return None
  most = math.floor(total_steps / 2 / epoch.steps * 100) / 100
  return (f"optim.warmup_epochs={warmup_epochs:g} comes to {steps} warm-up steps, more than "
          f"half of train.steps={total_steps}: warming up {fitted} step{'s' * (fitted != 1)} "
          f"instead (set optim.warmup_epochs <= {most:g} to choose)")

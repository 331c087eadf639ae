"""What an epoch is, in steps, and the warm-up it sets: computed here and nowhere else.

TOFA gives 5 warm-up epochs and 10,000 iterations but does not define an epoch. Ours is
one pass over the run's training data D_tr, the set its loss sums over (TOFA eq. 3-4):
- a run whose loss uses unlabelled images: the labelled and the unlabelled training
  images, at the images one step takes (`train.batch_size` +
  `train.unlabelled_batch_size`);
- a fully labelled run, or a variant with no unlabelled term: the labelled images at
  `train.batch_size`.
The warm-up (`optim.warmup_epochs`) and every per-epoch sampling scheme (`rss_epoch`,
`min_then_max`, `max_then_min`, `alternating`) count in these epochs.
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


def check_warmup(warmup_epochs: float, epoch: Epoch, total_steps: int) -> None:
  """A warm-up longer than half of the run is refused, with the figures that make it so."""
  steps = warmup_steps(warmup_epochs, epoch.steps)
  if 2 * steps <= total_steps:
    return
  most = math.floor(total_steps / 2 / epoch.steps * 100) / 100
  raise ValueError(f"optim.warmup_epochs={warmup_epochs:g} comes to {steps} warm-up steps, "
                   f"more than half of train.steps={total_steps}: {epoch.describe()}; set "
                   f"optim.warmup_epochs <= {most:g} or raise train.steps")

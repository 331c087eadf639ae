"""What an epoch is, in steps, and the warm-up it sets: computed here and nowhere else.

TOFA gives 5 warm-up epochs and 10,000 iterations but does not define an epoch. Ours is
one pass over the run's training data D_tr, the set its loss sums over (TOFA eq. 3-4):
- a run whose loss uses unlabelled images: the labelled and the unlabelled training
  images, at the images one step takes (`train.batch_size` +
  `train.unlabelled_batch_size`);
- a fully labelled run, or a variant with no unlabelled term: the labelled images at
  `train.batch_size`.
Every per-epoch sampling scheme (`rss_epoch`, `min_then_max`, `max_then_min`,
`alternating`) counts in these epochs, and so does a warm-up given in epochs
(`optim.warmup_epochs`); one given in steps (`optim.warmup_steps`) is the same for every
run whatever its data, as a comparison of runs on different data needs (the study's
arms). A warm-up longer than half of the run, in either form, is fitted to half of it,
with one line that says so.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any


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


def of_data(config, data, uses_unlabelled: bool) -> Epoch:
  """`of_run` for a run's config and its loaded data (`data/loading.Data`)."""
  return of_run(len(data.labelled_idx), len(data.unlabelled_idx), int(config.train.batch_size),
                int(config.train.unlabelled_batch_size), uses_unlabelled)


OFF = -1  # optim.warmup_epochs / optim.warmup_steps: the warm-up is given by the other key


def warmup_form(optim: Mapping[str, Any]) -> tuple[str, float]:
  """(key, value) of the one key that states the warm-up: `optim.warmup_steps` (the same
  steps for every run) or `optim.warmup_epochs` (steps through the run's epoch); the
  other is -1 (OFF). A config saved before `warmup_steps` existed states epochs.

  Raises a one-line ValueError when both or neither are set."""
  in_epochs, steps = optim.get("warmup_epochs", OFF), optim.get("warmup_steps", OFF)
  if (in_epochs == OFF) == (steps == OFF):
    what = "both set" if in_epochs != OFF else "both -1"
    raise ValueError(f"optim.warmup_epochs={in_epochs:g} and optim.warmup_steps={steps} are "
                     f"{what}; allowed: one of them >= 0 and the other -1")
  if steps != OFF:
    return "optim.warmup_steps", steps
  return "optim.warmup_epochs", in_epochs


def warmup_steps(optim: Mapping[str, Any], epoch_steps: int) -> int:
  """The warm-up `optim` states, in steps: `warmup_steps`, or `warmup_epochs` epochs of
  `epoch_steps` steps rounded to the nearest step."""
  key, value = warmup_form(optim)
  if key == "optim.warmup_steps":
    return int(value)
  return int(round(value * epoch_steps))


def run_warmup(optim: Mapping[str, Any], epoch_steps: int, total_steps: int) -> int:
  """The warm-up a run of `total_steps` steps takes: `warmup_steps(optim, ...)`, or half
  of the run where that is longer (a short run: a demo, a smoke test), in either form.
  Runs at least twice their warm-up, every one that trained before this fit, keep it
  unchanged."""
  return min(warmup_steps(optim, epoch_steps), total_steps // 2)


def fitted_warmup_note(optim: Mapping[str, Any], epoch: Epoch, total_steps: int) -> str | None:
  """The one line that says the warm-up was fitted to a short run, or None when it was not."""
  steps = warmup_steps(optim, epoch.steps)
  fitted = run_warmup(optim, epoch.steps, total_steps)
  if fitted == steps:
    return None
  key, value = warmup_form(optim)
  instead = (f"warming up {fitted} step{'s' * (fitted != 1)} instead (set {key} <= ")
  if key == "optim.warmup_steps":
    return (f"{key}={value} is more than half of train.steps={total_steps}: {instead}"
            f"{total_steps // 2} to choose)")
  most = math.floor(total_steps / 2 / epoch.steps * 100) / 100
  return (f"{key}={value:g} comes to {steps} warm-up steps, more than half of train.steps="
          f"{total_steps}: {instead}{most:g} to choose)")

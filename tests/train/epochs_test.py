"""What an epoch is, the warm-up it sets and the lr schedules, with the papers' figures."""

from __future__ import annotations

import numpy as np
import pytest

from tofa_jax.train import epochs, optim


def _in_epochs(n: float) -> dict:
  return {"warmup_epochs": n}  # as configs saved before optim.warmup_steps: no such key


def test_an_epoch_is_one_pass_over_the_data_the_loss_uses():
  # Semi-supervised (TOFA Table 2): labelled + unlabelled images at 32 + 32 per step.
  aircraft = epochs.of_run(1300, 6667 - 1300, 32, 32, uses_unlabelled=True)
  assert (aircraft.images, aircraft.per_step, aircraft.steps) == (6667, 64, 105)
  assert epochs.warmup_steps(_in_epochs(5), aircraft.steps) == 525
  cifar = epochs.of_run(200, 50_000 - 200, 32, 32, uses_unlabelled=True)
  assert (cifar.steps, epochs.warmup_steps(_in_epochs(5), cifar.steps)) == (782, 3910)
  assert cifar.describe() == ("an epoch is 782 steps (50000 labelled + unlabelled training "
                              "images, 64 per step)")
  # A variant with no unlabelled term counts the labelled images alone.
  assert epochs.of_run(200, 49_800, 32, 32, uses_unlabelled=False).steps == 7
  # Fully labelled CIFAR-10 (TOFA 4.4): 1563 steps; 5 epochs are 7815 of 10,000 steps.
  full = epochs.of_run(50_000, 0, 32, 32, uses_unlabelled=False)
  assert (full.steps, epochs.warmup_steps(_in_epochs(5), full.steps)) == (1563, 7815)
  assert epochs.warmup_steps(_in_epochs(0.5), 3) == 2  # rounded to the nearest step
  # Runs at least twice their warm-up keep it (so do the kept study runs)...
  assert epochs.run_warmup(_in_epochs(5), cifar.steps, 10_000) == 3910
  assert epochs.run_warmup(_in_epochs(3.19), full.steps, 10_000) == 4986
  assert epochs.fitted_warmup_note(_in_epochs(5), cifar, 10_000) is None
  assert epochs.fitted_warmup_note(_in_epochs(5), cifar, 7820) is None  # exactly twice
  # ...a shorter one warms up for half of its steps, and says so in one line.
  assert epochs.run_warmup(_in_epochs(5), full.steps, 10_000) == 5000
  assert epochs.fitted_warmup_note(_in_epochs(5), full, 10_000) == (
      "optim.warmup_epochs=5 comes to 7815 warm-up steps, more than half of "
      "train.steps=10000: warming up 5000 steps instead (set optim.warmup_epochs <= 3.19 "
      "to choose)")
  # The demo (configs/demo.py: 200 + 1238 digits at 16 + 16, one warm-up epoch) run for
  # 8, 12 and 40 steps, each refused before the fit.
  demo = epochs.of_run(200, 1238, 16, 16, uses_unlabelled=True)
  assert [epochs.run_warmup(_in_epochs(1), demo.steps, n) for n in (8, 12, 40, 90, 100, 1)] == [
      4, 6, 20, 45, 45, 0]
  assert epochs.fitted_warmup_note(_in_epochs(1), demo, 8) == (
      "optim.warmup_epochs=1 comes to 45 warm-up steps, more than half of train.steps=8: "
      "warming up 4 steps instead (set optim.warmup_epochs <= 0.08 to choose)")
  assert epochs.fitted_warmup_note(_in_epochs(1), epochs.of_run(50, 1388, 8, 8, True), 3) == (
      "optim.warmup_epochs=1 comes to 90 warm-up steps, more than half of train.steps=3: "
      "warming up 1 step instead (set optim.warmup_epochs <= 0.01 to choose)")


def test_a_fitted_warm_up_reaches_the_lr_at_half_of_a_short_run():
  cfg = {"lr": 0.1, "warmup_epochs": 1}
  cosine = optim.schedule(cfg, steps_per_epoch=90, total_steps=8)  # fitted to 4 steps
  np.testing.assert_allclose([float(cosine(s)) for s in range(9)],
                             [0.0, 0.025, 0.05, 0.075, 0.1, 0.1 * (1 + np.cos(np.pi / 4)) / 2,
                              0.05, 0.1 * (1 + np.cos(3 * np.pi / 4)) / 2, 0.0], rtol=1e-5,
                             atol=1e-9)
  constant = optim.schedule({**cfg, "schedule": "constant"}, 90, 8)
  np.testing.assert_allclose([float(constant(s)) for s in (0, 2, 4, 7)],
                             [0.0, 0.05, 0.1, 0.1], rtol=1e-6)


def test_schedules_warm_up_then_decay_or_hold():
  cfg = {"lr": 0.1, "warmup_epochs": 2}
  cosine = optim.schedule(cfg, steps_per_epoch=5, total_steps=100)  # no key: cosine
  constant = optim.schedule({**cfg, "schedule": "constant"}, steps_per_epoch=5, total_steps=100)
  for sched in (cosine, constant):
    np.testing.assert_allclose([float(sched(s)) for s in (0, 5, 10)], [0.0, 0.05, 0.1],
                               rtol=1e-6)
  np.testing.assert_allclose(float(cosine(55)), 0.05, rtol=1e-5)
  assert float(cosine(100)) == pytest.approx(0.0, abs=1e-9)
  np.testing.assert_allclose([float(constant(s)) for s in (11, 55, 99, 100)], [0.1] * 4,
                             rtol=1e-6)
  flat = optim.schedule({"lr": 0.1, "warmup_epochs": 0, "schedule": "constant"}, 5, 100)
  np.testing.assert_allclose([float(flat(s)) for s in (0, 50)], [0.1, 0.1], rtol=1e-6)
  with pytest.raises(ValueError, match=r"^optim.schedule='step' is unknown; choose one of "
                                       r"\['cosine', 'constant'\]$"):
    optim.schedule({**cfg, "schedule": "step"}, 5, 100)


def test_a_warm_up_in_steps_is_the_same_for_every_epoch_and_fitted_alike():
  steps = {"warmup_epochs": -1, "warmup_steps": 25}
  # The study's arms: 100 labelled at 16 a step (7-step epoch) and 4,000 images at 32 a
  # step (125 steps): 0.2 epochs were 1 and 25 warm-up steps; 25 steps are 25 in both.
  lab, full = epochs.of_run(100, 3900, 16, 16, False), epochs.of_run(100, 3900, 16, 16, True)
  assert (lab.steps, full.steps) == (7, 125)
  assert [epochs.run_warmup(_in_epochs(0.2), e.steps, 400) for e in (lab, full)] == [1, 25]
  assert [epochs.run_warmup(steps, e.steps, 400) for e in (lab, full)] == [25, 25]
  assert epochs.warmup_form(steps) == ("optim.warmup_steps", 25)
  assert epochs.warmup_form(_in_epochs(0.2)) == ("optim.warmup_epochs", 0.2)
  assert epochs.fitted_warmup_note(steps, lab, 50) is None  # exactly twice
  # A short run fits a warm-up in steps to half of it as well, and says so in one line.
  assert epochs.run_warmup({**steps, "warmup_steps": 300}, lab.steps, 400) == 200
  assert epochs.fitted_warmup_note({**steps, "warmup_steps": 300}, lab, 400) == (
      "optim.warmup_steps=300 is more than half of train.steps=400: warming up 200 steps "
      "instead (set optim.warmup_steps <= 200 to choose)")
  sched = optim.schedule({"lr": 0.1, **steps}, steps_per_epoch=7, total_steps=400)
  np.testing.assert_allclose([float(sched(s)) for s in (0, 1, 24, 25)],
                             [0.0, 0.004, 0.096, 0.1], rtol=1e-5)


@pytest.mark.parametrize("optim_cfg,what", [
    ({"warmup_epochs": 5.0, "warmup_steps": 25}, "both set"),
    ({"warmup_epochs": -1, "warmup_steps": -1}, "both -1"),
    ({"warmup_epochs": -1}, "both -1"),  # a steps-form config that lost its key
])
def test_the_warm_up_is_stated_once(optim_cfg, what):
  epochs_, steps = optim_cfg["warmup_epochs"], optim_cfg.get("warmup_steps", -1)
  message = (f"optim.warmup_epochs={epochs_:g} and optim.warmup_steps={steps} are {what}; "
             "allowed: one of them >= 0 and the other -1")
  with pytest.raises(ValueError, match=f"^{message.replace('.', '[.]')}$"):
    optim.schedule({"lr": 0.1, **optim_cfg}, 5, 100)

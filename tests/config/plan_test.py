"""`describe`: the run in one paragraph, with the numbers the run will use."""

from __future__ import annotations

from configs import demo
from helpers.configs import tiny_config
from tofa_jax.config import plan


def test_describe_says_what_the_demo_will_do():
  text = plan.describe(demo.get_config())
  assert "\n" not in text
  for part in ("space 'lite0' at 48, 64 px", "on digits (10 classes)",
               "200 labelled images of the 'train' split, drawn class-balanced, the rest "
               "unlabelled", "100 steps of 16 labelled + 16 unlabelled images",
               "loaded at 64 px", "the max subnet (at 64 px), the min subnet (at 48 px) and 2 "
               "random subnets", "loss 'tofa' (labelled CE, FixMatch, distillation on labelled "
               "and unlabelled images; threshold 0.95", "Starts from lite0-wheel",
               "lr 0.01", "1 warm-up epoch,", "Checkpoints every 50 steps and at the end",
               "evaluates max, min at the end", "logs every 10 steps"):
    assert part in text, (part, text)


def test_describe_follows_the_config():
  text = plan.describe(tiny_config(**{
      "train.sampling": "rss_batch", "loss.variant": "lab", "data.fully_labelled": True,
      "data.val_fraction": 0.3, "train.eval_every": 1, "train.stop_after_steps": 2,
      "data.image_size": 48, "optim.warmup_epochs": -1, "optim.warmup_steps": 25}))
  for part in ("every image of the 'train' split less 30% held out for the palette labelled",
               "25 warm-up steps, then cosine decay",
               "3 steps of 8 labelled images (global batch), loaded at 48 px",
               "one random subnet drawn per step (RSS, rss_batch)",
               "loss 'lab' (labelled CE; label smoothing 0.1)", "Starts from random weights",
               "evaluates max, min every step and at the end", "stops after step 2"):
    assert part in text, (part, text)
  assert "distillation" not in text and "unlabelled" not in text


def test_describe_says_what_each_scheme_and_single_mode_train():
  single = plan.describe(tiny_config(**{"train.mode": "single", "train.arch": "min",
                                        "loss.variant": "fm", "optim.schedule": "constant"}))
  for part in ("Each step trains one fixed network, train.arch='min' at 32 px (train.mode="
               "'single', TOFA Table 3's FixMatch), with loss 'fm' (labelled CE, FixMatch;",
               "then a constant lr.", "evaluates min at the end"):
    assert part in single, (part, single)
  assert "distillation" not in single
  ps = plan.describe(tiny_config(**{"train.sampling": "progressive_shrinking",
                                    "loss.variant": "lab", "train.ps_phases": (0.1, 0.3, 0.3,
                                                                               0.3)}))
  part = ("Each step trains by progressive shrinking (OFA, RSS 4.1): the max network for the "
          "first 10% of the steps, then 1 subnet with elastic kernel (30%), 2 with elastic "
          "kernel and depth (30%), 4 with every dimension elastic (30%), each step's subnets "
          "at one resolution drawn per step, with loss 'lab'")
  assert part in ps, ps
  bias = plan.describe(tiny_config(**{"train.sampling": "max_then_min", "loss.variant": "lab"}))
  assert ("Each step trains the max subnet for the first half of the epochs, then the min "
          "(RSS 6.3.2, max_then_min), with loss 'lab'") in bias, bias

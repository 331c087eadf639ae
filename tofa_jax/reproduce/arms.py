"""The study's training arms: what each changes in the base config (configs/study.py).

An arm is a named set of config overrides; `arm_config` applies one to the base for a
seed. The arms cover TOFA's Tables 3-4 (baselines and loss variants), its section 4.6
(a supernet trained with 30% of the data held out for validation), and the RSS paper's
sampling schemes. Those train as the RSS paper does: supervised, on `study.rss_labelled`
labelled images, from random weights, at one image size (`study.rss_resolutions`: RSS
varies kernel, depth and width only), for `study.rss_epochs` epochs of those images, at
RSS's learning rate per image (`study.rss_lr`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from tofa_jax.train import epochs


@dataclasses.dataclass(frozen=True)
class Arm:
  name: str
  what: str  # one line for the tables
  overrides: tuple[tuple[str, Any], ...]
  rss: bool = False  # the RSS setting: study.rss_* (labelled, from random weights, epochs)


def _single(variant: str) -> tuple[tuple[str, Any], ...]:
  return (("train.mode", "single"), ("train.arch", "max"), ("loss.variant", variant))


def _rss(name: str, what: str, sampling: str, *more) -> Arm:
  return Arm(name, what, (("train.sampling", sampling), ("loss.variant", "lab"), *more), rss=True)


CONSTANT_LR = (("optim.schedule", "constant"),)  # RSS 6.3.2's two-subnet runs

ARMS: dict[str, Arm] = {a.name: a for a in (
    Arm("baseline", "one maxnet, labelled CE (TOFA Table 3 Baseline)", _single("lab")),
    Arm("fixmatch", "one maxnet, FixMatch (TOFA Table 3)", _single("fm")),
    Arm("lab", "supernet, L^lab (TOFA-lab)", (("loss.variant", "lab"),)),
    Arm("fm", "supernet, L^lab + L^FM", (("loss.variant", "fm"),)),
    Arm("dist", "supernet, L^lab + L^dist", (("loss.variant", "dist"),)),
    Arm("tofa", "supernet, full TOFA loss (TOFA-full)", (("loss.variant", "tofa"),)),
    Arm("held_out", "supernet, full loss, 30% of the training data held out (TOFA 4.6)",
        (("loss.variant", "tofa"), ("data.val_fraction", 0.3))),
    _rss("sandwich", "sandwich: max + min + 2 random per step (with KD)", "sandwich"),
    _rss("progressive_shrinking", "OFA progressive shrinking (RSS 4.1)",
         "progressive_shrinking"),
    _rss("rss_epoch", "RSS: one random subnet per epoch", "rss_epoch"),
    _rss("rss_batch", "RSS: one random subnet per step", "rss_batch"),
    _rss("single_min", "smallest subnet only (RSS Fig. 6)", "single_min"),
    _rss("single_median", "median-cost subnet only (RSS Fig. 6's middle)", "single_median"),
    _rss("single_max", "largest subnet only (RSS Fig. 6)", "single_max"),
    _rss("min_then_max", "min, then max (RSS Fig. 7)", "min_then_max", *CONSTANT_LR),
    _rss("max_then_min", "max, then min (RSS Fig. 7)", "max_then_min", *CONSTANT_LR),
    _rss("alternating", "min and max alternating per epoch (RSS Fig. 7)", "alternating",
         *CONSTANT_LR),
)}


def set_key(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
  *path, leaf = key.split(".")
  node = config
  for part in path:
    node = node[part]
  node[leaf] = value


def arm_config(base: ml_collections.ConfigDict, arm: Arm, seed: int,
               extra: tuple[tuple[str, Any], ...] = ()) -> ml_collections.ConfigDict:
  """The training config of `arm` at `seed`: the base without its `study` section."""
  config = ml_collections.ConfigDict(base.to_dict())
  study = config.study
  del config["study"]
  config.seed = seed
  if arm.rss:
    config.data.num_labelled = int(study.rss_labelled)
    config.init.checkpoint = "random"  # RSS trains its supernet from scratch
    config.model.resolutions = tuple(study.rss_resolutions)
    config.optim.lr = float(study.rss_lr)
    epoch = epochs.Epoch(int(study.rss_labelled), int(config.train.batch_size), False)
    config.train.steps = int(study.rss_epochs) * epoch.steps
  for key, value in (*arm.overrides, *extra):
    set_key(config, key, value)
  return config

"""The study's shared state: its base config, seeds, runs and output folders; `quick`.

`quick(config)` shrinks a study config to a pipeline check (CI): one seed, a few
steps, the `tiny_lite` space from random weights at one resolution, small searches.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import ml_collections

from tofa_jax.config import validate
from tofa_jax.reproduce import arms as arms_lib
from tofa_jax.reproduce.runs import Runs
from tofa_jax.search import palette, palette_store

QUICK: tuple[tuple[str, Any], ...] = (
    ("model.space", "tiny_lite"),
    ("model.resolutions", (32,)),
    ("init.checkpoint", "random"),
    ("data.threads", 1),
    ("optim.warmup_steps", 0),
    ("train.log_every", 2),
    ("evals.bn_images", 100),  # one batch of evals.batch_size
    ("palette.num_budgets", 2),
    ("palette.random_samples", 2),
    ("palette.predictor.samples", 8),
    ("palette.evolution.population", 4),
    ("palette.evolution.generations", 1),
    ("palette.evolution.parents", 2),
    ("palette.evolution.num_mutations", 2),
    ("palette.evolution.num_crossovers", 2),
    ("study.population_bins", 2),
    ("palette.population_per_bin", 2),
    ("palette.latency_repeats", 1),
    ("study.seeds", (0,)),
    ("study.rss_labelled", 32),  # 2 steps an epoch: the two-subnet schemes need 2 epochs
    ("study.rss_epochs", 2),
    ("study.selection_budgets", 2),
    ("study.finetune_steps", 2),
    # Cheaper, same paths: no remat (it changes memory and time, never the outputs:
    # remat_test) traces and compiles each train step in 12% less CPU (lab and rss_batch
    # arms, cold: 45.8 against 52.1 s); and the REG-NAS searches score 400 carved
    # validation images, not 1,200.
    ("train.remat", "none"),
    ("palette.val_fraction", 0.1),
)


def quick(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(config.to_dict())
  for key, value in QUICK:
    arms_lib.set_key(config, key, value)
  config.train.steps = int(config.study.quick_steps)
  config.train.checkpoint_every = int(config.study.quick_steps)
  config.study.regnas_evolution = ml_collections.ConfigDict(config.palette.evolution.to_dict())
  return config


@dataclasses.dataclass
class Study:
  base: ml_collections.ConfigDict
  root: str
  runs: Runs
  is_quick: bool

  @property
  def seeds(self) -> tuple[int, ...]:
    return tuple(int(s) for s in self.base.study.seeds)

  @property
  def plots(self) -> str:
    path = os.path.join(self.root, "plots")
    os.makedirs(path, exist_ok=True)
    return path

  def config(self, arm: str | arms_lib.Arm, seed: int,
             extra: tuple[tuple[str, Any], ...] = ()) -> ml_collections.ConfigDict:
    arm = arms_lib.ARMS[arm] if isinstance(arm, str) else arm
    return arms_lib.arm_config(self.base, arm, seed, extra)

  def train(self, arm: str | arms_lib.Arm, seed: int) -> dict[str, Any]:
    arm = arms_lib.ARMS[arm] if isinstance(arm, str) else arm
    return self.runs.train(arm.name, seed, self.config(arm, seed))

  def palette(self, name: str, arm: str, seed: int,
              extra: tuple[tuple[str, Any], ...] = ()) -> dict[str, Any]:
    """A palette run on `arm`'s trained workdir at `seed` (trained first if need be)."""
    arm = arms_lib.ARMS[arm] if isinstance(arm, str) else arm
    self.train(arm, seed)
    return self.runs.palette(
        f"{name}_seed{seed}", self.config(arm, seed, extra), self.runs.workdir(arm.name, seed),
        before=lambda: self.runs.restore(arm.name, seed, self.config(arm, seed)))

  def palette_files(self, name: str, arm: str, seed: int,
                    extra: tuple[tuple[str, Any], ...] = ()) -> str:
    """The palette.json of palette `name` whose files (exported members) are on this
    machine: the kept report's, or else a palette run again on the arm's workdir (its
    checkpoint restored first), whose palette.json lies in WORKDIR/palettes/NAME/."""
    kept = self.runs.palette_path(f"{name}_seed{seed}")
    with open(kept) as f:
      members = json.load(f)["models"]
    if all(os.path.isdir(m.get("export_dir") or "") for m in members):
      return kept
    workdir = self.runs.workdir(arm, seed)
    config = self.config(arm, seed, extra)
    validate.palette(config)
    self.runs.restore(arm, seed, self.config(arm, seed))
    self.runs.log(f"study: palette {name}_seed{seed} again on {workdir}: its members' files are "
                  "not on this machine")
    report = palette.run(config, workdir, log=self.runs.log)
    again = report["models"]
    if [m["arch"] for m in again] != [m["arch"] for m in members]:
      raise ValueError(f"the palette {name}_seed{seed} run again on {workdir} picked other "
                       f"members than {kept} keeps; results that read its members would not "
                       "match: move that file away to recompute them")
    return os.path.join(palette_store.palette_dir(workdir, report["name"]),
                        palette_store.REPORT)

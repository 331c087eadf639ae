"""A config file that reads a training run's saved config: `saved_config.py:WORKDIR`.

`python -m tofa_jax.palette --workdir=DIR` uses it when no --config is given,
so `--config.palette.budgets=...` overrides still work. JSON lists become
tuples, as the config files write them.
"""

from __future__ import annotations

import json
import os

import ml_collections

FILE = "config.json"  # written by train.save_run_config
BN_IMAGES = 1000  # configs/default.py's evals.bn_images, for runs saved before the key


def _tuples(x):
  if isinstance(x, dict):
    return {k: _tuples(v) for k, v in x.items()}
  if isinstance(x, list):
    return tuple(_tuples(v) for v in x)
  return x


def get_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, FILE)
  if not os.path.isfile(path):
    raise ValueError(f"--workdir={workdir}: no {FILE} (written by python -m tofa_jax.main); "
                     "pass the training --config")
  try:
    with open(path) as f:
      config = ml_collections.ConfigDict(_tuples(json.load(f)))
  except ValueError as e:  # truncated or damaged: name the file, not only the JSON error
    raise ValueError(f"{path} is unreadable ({e}); pass the training --config instead") from None
  if "palette" not in config:
    raise ValueError(f"{path} has no palette section (an older run); pass the training "
                     "--config")
  # Runs from before these palette keys: --config.palette.name=/rule= must still find
  # them (at configs/default.py's values, which the palette uses when they are absent).
  for key, value in (("name", ""), ("rule", "bands")):
    if key not in config.palette:
      config.palette[key] = value
  # Runs from before evals.bn_images recalibrated BN on evals.bn_batches labelled batches;
  # a palette of such a run now follows today's rule (data/calibration.py) at the default
  # count, and a --config.evals.bn_batches override fails as for any unknown key.
  evals = config.get("evals")
  if evals is not None and "bn_images" not in evals:
    evals.bn_images = BN_IMAGES
    if "bn_batches" in evals:
      del evals["bn_batches"]
  optim = config.get("optim")
  if optim is not None and "warmup_steps" not in optim:  # the warm-up was in epochs
    optim.warmup_steps = -1
  return config

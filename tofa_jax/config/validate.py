"""A config checked before any data is loaded or anything compiles.

  training(config)  every key of a training config, then the checks between keys;
                    the palette section too, so a bad palette key fails now and not
                    after the run (`python -m tofa_jax.main`).
  palette(config)   what `python -m tofa_jax.palette` reads: seed, model, init,
                    data, evals and palette (`python -m tofa_jax.palette`).
  model(config)     the model section and the space it names (`latency_table`).

Each raises a ValueError with one line that names the key, its value and what is
allowed. Only the keys present are checked: a saved `config.json` of an older run
lacks newer keys, and the code falls back to their defaults (`pc.get(...)`).
`training` also refuses keys the table does not know (a misspelt key in a config
file would be ignored otherwise); `palette` skips them, as saved configs of other
versions may hold keys that have since gone.

What is looked up cheaply: the class count (`facts.num_classes`: bundled data,
prepared TFDS metadata, class folders) and the device count (batches must divide
over `jax.device_count()`). A dataset that is not prepared skips the class-count
checks; the data loader reports it.

Both also check that the optional packages the config needs are installed
(`needs.py`: torch for a PyTorch start, gdown for a download, the data source's,
the palette's runtime), so a missing one stops the run before any data loads.
"""

from __future__ import annotations

from typing import Any

from tofa_jax.config import consistency, facts, needs
from tofa_jax.config.schema import check_keys, get
from tofa_jax.space.search_space import SearchSpace

PALETTE_SECTIONS = ("seed", "model", "init", "data", "evals", "palette")


def training(config: Any) -> None:
  """Checks a training config (`configs/*.py` with overrides); raises ValueError."""
  import jax

  check_keys(config, strict=True)
  sp = consistency.space(config)
  classes = facts.num_classes(get(config, "data", {}))
  consistency.window(config, sp)
  consistency.data(config, classes)
  consistency.step(config, sp)
  consistency.schedule(config, sp)
  consistency.warmup(config)
  unlabelled = consistency.uses_unlabelled(config)
  consistency.labelled(config, classes, unlabelled)
  consistency.batches(config, unlabelled, jax.device_count())
  consistency.subnets(config, sp)
  consistency.init(config, sp, classes)
  consistency.palette(config, sp, classes)
  needs.training(config)


def palette(config: Any) -> None:
  """Checks the config a palette run reads (the run's saved config.json or a config
  file, with overrides); raises ValueError."""
  check_keys(config, PALETTE_SECTIONS, strict=False)
  sp = consistency.space(config)
  classes = facts.num_classes(get(config, "data", {}))
  consistency.data(config, classes)
  if not get(config, "data.mean"):  # else the normalisation comes from init.checkpoint
    consistency.init(config, sp, classes)
  consistency.palette(config, sp, classes)
  needs.palette(config)


def model(config: Any) -> SearchSpace:
  """Checks `config.model` and returns the space it names; raises ValueError."""
  check_keys(config, ("model",), strict=False)
  return consistency.space(config)

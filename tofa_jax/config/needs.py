"""The optional packages a config needs (`runtime/extras.EXTRAS`), checked before
any data loads: each missing one stops the run with one line naming the config key
and the `pip install` to run.

  training(config)  the start (torch for a PyTorch file, gdown for a download) and
                    the data source.
  palette(config)   the data source, the figures and `palette.latency_runtime`.
"""

from __future__ import annotations

import os
from typing import Any

from tofa_jax.config.schema import get
from tofa_jax.data import datasets
from tofa_jax.runtime import extras
from tofa_jax.weights import named_starts


def _start(config: Any) -> list[tuple[str, str]]:
  name = get(config, "init.checkpoint", "")
  why = f"init.checkpoint={name!r}"
  if name in named_starts.NAMED:
    out = [("torch", why)]  # every named start is a PyTorch file
    start = named_starts.NAMED[name]
    if (get(config, "init.download", False) and start.downloadable
        and not os.path.isfile(os.path.join(named_starts.cache_dir(), start.file))):
      out.append(("gdown", f"{why} with init.download=True"))
    return out
  return [("torch", why)] if name and os.path.isfile(name) else []  # else random or a dir


def _data(config: Any) -> list[tuple[str, str]]:
  name = get(config, "data.name", "")
  why = f"data.name={name!r}"
  if name in datasets.BUNDLED:
    return [(name, why)]
  return [("tfds", why)] if name in datasets.TFDS_NAMES else []


def _check(wanted: list[tuple[str, str]]) -> None:
  for feature, why in wanted:
    extras.require(feature, why)


def training(config: Any) -> None:
  """Raises a one-line ValueError when a package the training run needs is missing."""
  _check(_start(config) + _data(config))


def palette(config: Any) -> None:
  """Raises a one-line ValueError when a package the palette run needs is missing."""
  wanted = _data(config) + [("plots", "python -m tofa_jax.palette (its figures)")]
  runtime = get(config, "palette.latency_runtime", "jax")
  if runtime in extras.BY_RUNTIME:
    wanted.append((extras.BY_RUNTIME[runtime], f"palette.latency_runtime={runtime!r}"))
  _check(wanted)

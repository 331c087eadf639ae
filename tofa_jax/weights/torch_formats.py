"""PyTorch state dicts in the supernet's vocabulary: one reader per format family.

Formats:
  efficientnet_lite  lukemelas naming (`_conv_stem`, `_blocks.N._expand_conv`,
                     ...), EfficientNet-Lite0/1/2 -> `lite0/1/2` spaces.
  attentivenas       AttentiveNAS/AlphaNet supernets (`module.blocks.i.
                     mobile_inverted_conv...`) -> `alphanet` (or `tofa`).
  ofa                Once-for-All MobileNetV3 supernets, kernel-transform
                     matrices included -> `ofa_mbv3`.
  torchvision_mbv3   torchvision's MobileNetV3-Large -> `mbv3_large`.

A reader turns a state dict into a `_Net`: per-block tensors in HWIO layout
under the supernet's module names. `_REQUIRES` says what each format's network
computes besides its weights (a space must agree), `NORMALIZATION` what input it
expects.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np

from tofa_jax.space.search_space import SearchSpace

FORMATS = ("efficientnet_lite", "attentivenas", "ofa", "torchvision_mbv3")
SUPERNET_FORMATS = ("attentivenas", "ofa")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained in TensorFlow on (x - 127) / 128 of 0-255 pixels.
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3


def normalization(fmt: str) -> tuple[tuple, tuple]:
  """(mean, std) on [0, 1] pixels that a network of format `fmt` expects."""
  if fmt == "efficientnet_lite":
    return LITE_MEAN, LITE_STD
  return IMAGENET_MEAN, IMAGENET_STD


def format_error(fmt: str) -> ValueError:
  return ValueError(f"--format={fmt!r} is unknown; choose one of {list(FORMATS)}")


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

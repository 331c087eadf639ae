"""PyTorch reference networks for the conversion tests.

- `load_ofa()`: the `ofa` package's OFAMobileNetV3, its torchvision imports stubbed.
- `AttentiveNasRef`: a minimal AttentiveNAS/AlphaNet supernet written from the
  checkpoint key scheme (module names give the state-dict keys) and the
  AttentiveNAS dynamic-op semantics (leading-slice weights, centre-crop kernels,
  avg-pool/1x1-conv shortcut).
- `MobileNetV3LargeRef`: torchvision's MobileNetV3-Large layout and names
  (`features.N.block.M...`, `classifier.0/3`), BN eps 1e-3.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tofa_jax.space.search_space import SearchSpace, make_divisible


class _StubTorchvision(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """ofa imports torchvision only for its data code; stub the package."""

  def find_spec(self, name, path, target=None):
    if name == "torchvision" or name.startswith("torchvision."):
      return importlib.machinery.ModuleSpec(name, self, is_package=True)
    return None

  def create_module(self, spec):
    module = types.ModuleType(spec.name)
    module.__path__, module.__file__ = [], None

    def getattr_(attr):
      if attr.startswith("__"):
        raise AttributeError(attr)
      return type(attr, (object,), {})

    module.__getattr__ = getattr_
    return module

  def exec_module(self, module):
    pass


def load_ofa():
  if not any(isinstance(f, _StubTorchvision) for f in sys.meta_path):
    sys.meta_path.insert(0, _StubTorchvision())
  from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
  return OFAMobileNetV3


def randomize_(module: nn.Module, seed: int = 0, calibrate=None) -> None:
  """Random weights that keep activations O(1), with nothing left at a default.

  Convs are He-normal, the classifier gives O(1) logits, biases and BN affine
  parameters are random, kernel-transform matrices are off identity. BN running
  statistics come from one training-mode pass of `calibrate()` (a cumulative
  average), as BN recalibration would set them.
  """
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, v in module.state_dict().items():
      if not v.is_floating_point() or "running_" in name:
        continue
      u = torch.rand(v.shape, generator=g)
      if name.endswith("weight") and v.ndim == 1:
        v.copy_(0.5 + u)
      elif name.endswith("bias"):
        v.copy_(0.2 * (u - 0.5))
      elif name.endswith("_matrix"):
        v.add_(0.1 * torch.randn(v.shape, generator=g))
      elif v.ndim == 4:
        fan_in = v.shape[1] * v.shape[2] * v.shape[3]
        v.copy_(torch.randn(v.shape, generator=g) * (2.0 / fan_in) ** 0.5)
      elif v.ndim == 2:
        v.copy_(torch.randn(v.shape, generator=g) * (3.0 / v.shape[1]) ** 0.5)
    if calibrate is not None:
      bns = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
      for m in bns:
        m.reset_running_stats()
        m.momentum = None
      module.train()
      calibrate()
      for m in bns:
        m.momentum = 0.1
  module.eval()


def _act(name: str, x: torch.Tensor) -> torch.Tensor:
  return {"relu": F.relu, "relu6": F.relu6, "swish": F.silu, "hswish": F.hardswish}[name](x)


def _wrap(**children: nn.Module) -> nn.Module:
  m = nn.Module()
  for k, v in children.items():
    setattr(m, k, v)
  return m


def _conv(c_in: int, c_out: int, k: int = 1, groups: int = 1, bias: bool = False) -> nn.Module:
  return _wrap(conv=nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias))


def _bn(c: int) -> nn.Module:
  return _wrap(bn=nn.BatchNorm2d(c))


def _bn_eval(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
  """Sliced BN; in training mode (calibration) it updates the running-stat slices."""
  c = x.shape[1]
  return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                      bn.training, 1.0 if bn.training else 0.0, bn.eps)


class AttentiveNasRef(nn.Module):
  """AttentiveNAS supernet with AttentiveNAS's state-dict names."""

  def __init__(self, space: SearchSpace, n_classes: int):
    super().__init__()
    self.space = space
    stem = max(space.stem_widths)
    self.first_conv = _wrap(conv=_conv(3, stem, 3), bn=_bn(stem))
    blocks, c_in = [], stem
    for st in space.stages:
      c_out = max(st.widths)
      for _ in range(st.max_depth):
        ins = c_in
        mid = ins if max(st.expansions) == 1 else make_divisible(round(ins * max(st.expansions)))
        mic = nn.Module()
        if max(st.expansions) != 1:
          mic.inverted_bottleneck = _wrap(conv=_conv(ins, mid), bn=_bn(mid))
        depth_conv = _wrap(conv=_conv(mid, mid, max(st.kernels), groups=mid), bn=_bn(mid))
        if st.se:
          se_mid = make_divisible(mid // 4)
          depth_conv.se = _wrap(fc=_wrap(reduce=nn.Conv2d(mid, se_mid, 1),
                                         expand=nn.Conv2d(se_mid, mid, 1)))
        mic.depth_conv = depth_conv
        mic.point_linear = _wrap(conv=_conv(mid, c_out), bn=_bn(c_out))
        blocks.append(_wrap(mobile_inverted_conv=mic, shortcut=_wrap(conv=_conv(ins, c_out))))
        c_in = c_out
    self.blocks = nn.ModuleList(blocks)
    exp = round(c_in * space.head_expand)
    head = max(space.head_widths)
    self.last_conv = _wrap(final_expand_layer=_wrap(conv=_conv(c_in, exp), bn=_bn(exp)),
                           feature_mix_layer=_wrap(conv=_conv(exp, head)))
    self.classifier = _wrap(linear=_wrap(linear=nn.Linear(head, n_classes)))
    # AttentiveNAS keeps BN-recalibration buffers the converter must ignore.
    self.bn_tracking = nn.ModuleList([nn.BatchNorm2d(4)])

  def forward(self, x: torch.Tensor, arch) -> torch.Tensor:
    sp = self.space
    w0 = arch.width[0]
    fc = self.first_conv
    x = F.conv2d(x, fc.conv.conv.weight[:w0], stride=2, padding=1)
    x = _act(sp.stem_act, _bn_eval(fc.bn.bn, x))
    block_index = 0
    for s, st in enumerate(sp.stages):
      c_out = arch.width[s + 1]
      for layer in range(st.max_depth):
        block = self.blocks[block_index + layer]
        if layer < arch.depth[s]:
          stride = st.stride if layer == 0 else 1
          x = self._block(block, x, c_out, arch.kernel[s][layer], arch.expand[s][layer],
                          stride, st)
      block_index += st.max_depth
    lc = self.last_conv
    c_last = x.shape[1]
    exp = round(c_last * sp.head_expand)
    x = F.conv2d(x, lc.final_expand_layer.conv.conv.weight[:exp, :c_last])
    x = _act(sp.head_act, _bn_eval(lc.final_expand_layer.bn.bn, x))
    x = x.mean((2, 3), keepdim=True)
    x = F.conv2d(x, lc.feature_mix_layer.conv.conv.weight[:arch.width[-1], :exp])
    x = _act(sp.head_act, x).flatten(1)
    lin = self.classifier.linear.linear
    return F.linear(x, lin.weight[:, :arch.width[-1]], lin.bias)

  def _block(self, block, x, c_out, k, e, stride, st):
    mic, c_in = block.mobile_inverted_conv, x.shape[1]
    h = x
    if hasattr(mic, "inverted_bottleneck"):
      mid = make_divisible(round(c_in * e))
      h = F.conv2d(h, mic.inverted_bottleneck.conv.conv.weight[:mid, :c_in])
      h = _act(st.act, _bn_eval(mic.inverted_bottleneck.bn.bn, h))
    mid = h.shape[1]
    w = mic.depth_conv.conv.conv.weight[:mid]
    start = (w.shape[-1] - k) // 2
    w = w[:, :, start:start + k, start:start + k]
    h = F.conv2d(h, w, stride=stride, padding=k // 2, groups=mid)
    h = _act(st.act, _bn_eval(mic.depth_conv.bn.bn, h))
    if st.se:
      fc = mic.depth_conv.se.fc
      n = make_divisible(mid // 4)
      g = F.relu(F.conv2d(h.mean((2, 3), keepdim=True), fc.reduce.weight[:n, :mid],
                          fc.reduce.bias[:n]))
      g = F.hardsigmoid(F.conv2d(g, fc.expand.weight[:mid, :n], fc.expand.bias[:mid]))
      h = h * g
    y = _bn_eval(mic.point_linear.bn.bn,
                 F.conv2d(h, mic.point_linear.conv.conv.weight[:c_out, :mid]))
    if c_in == c_out and stride == 1:
      return y + x
    sc = x
    if stride > 1:
      sc = F.avg_pool2d(sc, stride, padding=0 if sc.shape[-1] % 2 == 0 else 1)
    if c_in != c_out:
      sc = F.conv2d(sc, block.shortcut.conv.conv.weight[:c_out, :c_in])
    return y + sc


# torchvision's MobileNetV3-Large: (kernel, expanded, out, SE, activation, stride).
MBV3_LARGE = [
    (3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1), (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hswish", 2), (3, 200, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1), (3, 184, 80, False, "hswish", 1),
    (3, 480, 112, True, "hswish", 1), (3, 672, 112, True, "hswish", 1),
    (5, 672, 160, True, "hswish", 2), (5, 960, 160, True, "hswish", 1),
    (5, 960, 160, True, "hswish", 1),
]


def _cna(c_in, c_out, k, stride=1, groups=1) -> nn.Sequential:
  return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups,
                                 bias=False), nn.BatchNorm2d(c_out, eps=1e-3))


class _SE(nn.Module):
  def __init__(self, c: int):
    super().__init__()
    n = make_divisible(c // 4)
    self.fc1, self.fc2 = nn.Conv2d(c, n, 1), nn.Conv2d(n, c, 1)

  def forward(self, x):
    g = F.relu(self.fc1(x.mean((2, 3), keepdim=True)))
    return x * F.hardsigmoid(self.fc2(g))


class _InvertedResidual(nn.Module):
  def __init__(self, c_in, k, exp, c_out, se, act, stride):
    super().__init__()
    self.act, self.residual = act, stride == 1 and c_in == c_out
    layers, self.acts = [], []
    if exp != c_in:
      layers.append(_cna(c_in, exp, 1))
      self.acts.append(True)
    layers.append(_cna(exp, exp, k, stride, groups=exp))
    self.acts.append(True)
    if se:
      layers.append(_SE(exp))
      self.acts.append(False)
    layers.append(_cna(exp, c_out, 1))
    self.acts.append(False)
    self.block = nn.Sequential(*layers)

  def forward(self, x):
    h = x
    for layer, act in zip(self.block, self.acts, strict=True):
      h = layer(h)
      if act:
        h = _act(self.act, h)
    return h + x if self.residual else h


class MobileNetV3LargeRef(nn.Module):
  def __init__(self, n_classes: int = 1000):
    super().__init__()
    features = [_cna(3, 16, 3, 2)]
    c_in = 16
    for k, exp, c_out, se, act, stride in MBV3_LARGE:
      features.append(_InvertedResidual(c_in, k, exp, c_out, se, act, stride))
      c_in = c_out
    features.append(_cna(c_in, 6 * c_in, 1))
    self.features = nn.Sequential(*features)
    self.classifier = nn.Sequential(nn.Linear(960, 1280), nn.Hardswish(), nn.Dropout(0.2),
                                    nn.Linear(1280, n_classes))

  def forward(self, x):
    x = F.hardswish(self.features[0](x))
    for f in self.features[1:-1]:
      x = f(x)
    x = F.hardswish(self.features[-1](x)).mean((2, 3))
    return self.classifier(x)


def to_nchw(x: np.ndarray) -> torch.Tensor:
  return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

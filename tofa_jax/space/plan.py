"""A subnet's per-layer plan: the concrete shapes, strides and shortcuts of its
active layers, and the conv padding rules that set its feature-map sizes.

FLOPs counting, the activation-memory model, static extraction and the REG-NAS
containment check all read a subnet through this plan. Plain Python: no JAX.
"""

from __future__ import annotations

import dataclasses

from tofa_jax.space import arch as arch_lib
from tofa_jax.space.search_space import SearchSpace, make_divisible


def conv_pads(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
  """(low, high) padding: PyTorch k//2 ('symmetric') or TensorFlow SAME ('same')."""
  if padding == "symmetric":
    return kernel // 2, kernel // 2
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def conv_out_size(size: int, kernel: int, stride: int, padding: str) -> int:
  """Output length of a conv along one axis, with `conv_pads` padding."""
  lo, hi = conv_pads(size, kernel, stride, padding)
  return (size + lo + hi - kernel) // stride + 1



@dataclasses.dataclass(frozen=True)
class LayerPlan:
  """Concrete dimensions of one active MBConv layer."""

  name: str
  c_in: int
  mid: int
  c_out: int
  kernel: int
  stride: int
  expand: bool
  se_mid: int  # 0 when the layer has no SE
  act: str
  residual: str  # 'none', 'identity', 'pool', 'conv' or 'pool_conv'
  stage: int = 0


def plan(space: SearchSpace, arch: arch_lib.Arch) -> list[LayerPlan]:
  """The active layers of `arch`, with their dimensions, in order."""
  layers = []
  c_in = arch.width[0]
  for s, st in enumerate(space.stages):
    c_out = arch.width[s + 1]
    for layer in range(arch.depth[s]):
      e = arch.expand[s][layer]
      stride = st.stride if layer == 0 else 1
      has_expand = max(st.expansions) != 1
      mid = make_divisible(round(c_in * e), 8) if has_expand else c_in
      if layer > 0:
        residual = "identity"
      elif space.shortcut == "identity":
        residual = "identity" if stride == 1 and c_in == c_out else "none"
      else:
        pool = "pool" if stride > 1 else ""
        conv = "conv" if c_in != c_out else ""
        residual = "_".join(p for p in (pool, conv) if p) or "identity"
      layers.append(LayerPlan(f"stage{s}_layer{layer}", c_in, mid, c_out,
                              arch.kernel[s][layer], stride, has_expand,
                              make_divisible(mid // 4, 8) if st.se else 0, st.act, residual,
                              s))
      c_in = c_out
  return layers


def head_expand_width(space: SearchSpace, arch: arch_lib.Arch) -> int:
  return round(arch.width[-2] * space.head_expand)

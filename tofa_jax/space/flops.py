"""Multiply-adds ("MFLOPs" as OFA/AttentiveNAS report them) and parameters.

Counts convolutions and linear layers only (BN, activations and pooling are
free), as OFA's `count_net_flops` does. Parameters count weights, biases and
BN scale/bias, not running statistics.

`python -m tofa_jax.flops` prints them for one subnet.
"""

from __future__ import annotations

import dataclasses

from tofa_jax.space import arch as arch_lib
from tofa_jax.space import plan as plan_lib
from tofa_jax.space.search_space import SearchSpace


@dataclasses.dataclass(frozen=True)
class Cost:
  macs: int
  params: int

  @property
  def mflops(self) -> float:
    return self.macs / 1e6

  @property
  def mparams(self) -> float:
    return self.params / 1e6


def count(space: SearchSpace, arch: arch_lib.Arch, num_classes: int = 1000) -> Cost:
  """MACs and parameters of `arch` (at `arch.resolution`)."""
  macs = params = 0

  def conv(hw: int, c_in: int, c_out: int, k: int, groups: int = 1, bias: bool = False,
           bn: bool = False) -> None:
    nonlocal macs, params
    w = k * k * (c_in // groups) * c_out
    macs += hw * hw * w
    params += w + (c_out if bias else 0) + (2 * c_out if bn else 0)

  size = plan_lib.conv_out_size(arch.resolution, 3, 2, space.padding)
  conv(size, 3, arch.width[0], 3, bn=True)
  for lp in plan_lib.plan(space, arch):
    if lp.expand:
      conv(size, lp.c_in, lp.mid, 1, bn=True)
    in_size, size = size, plan_lib.conv_out_size(size, lp.kernel, lp.stride, space.padding)
    conv(size, lp.mid, lp.mid, lp.kernel, groups=lp.mid, bn=True)
    if lp.se_mid:
      conv(1, lp.mid, lp.se_mid, 1, bias=True)
      conv(1, lp.se_mid, lp.mid, 1, bias=True)
    conv(size, lp.mid, lp.c_out, 1, bn=True)
    if "conv" in lp.residual:
      conv(size if "pool" in lp.residual else in_size, lp.c_in, lp.c_out, 1)
  c_last, c_head = arch.width[-2], arch.width[-1]
  if space.head == "conv":
    conv(size, c_last, c_head, 1, bn=True)
  else:
    c_exp = plan_lib.head_expand_width(space, arch)
    conv(size, c_last, c_exp, 1, bn=True)
    conv(1, c_exp, c_head, 1, bias=space.head_bias)
  conv(1, c_head, num_classes, 1, bias=True)
  return Cost(macs, params)

"""Multiply-adds ("MFLOPs" as OFA/AttentiveNAS report them) and parameters.

Counts convolutions and linear layers only (BN, activations and pooling are
free), as OFA's `count_net_flops` does. Parameters count weights, biases and
BN scale/bias, not running statistics.

CLI:
  python -m tofa_jax.flops --space=tofa --arch=max [--resolution=224]
prints MFLOPs and params, with MFLOPs as the last line.
"""

from __future__ import annotations

import dataclasses
import sys

from tofa_jax import arch as arch_lib
from tofa_jax import elastic_ops as ops
from tofa_jax import static_net
from tofa_jax.search_space import SearchSpace


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

  size = ops.conv_out_size(arch.resolution, 3, 2, space.padding)
  conv(size, 3, arch.width[0], 3, bn=True)
  for lp in static_net.plan(space, arch):
    if lp.expand:
      conv(size, lp.c_in, lp.mid, 1, bn=True)
    in_size, size = size, ops.conv_out_size(size, lp.kernel, lp.stride, space.padding)
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
    c_exp = static_net.head_expand_width(space, arch)
    conv(size, c_last, c_exp, 1, bn=True)
    conv(1, c_exp, c_head, 1, bias=space.head_bias)
  conv(1, c_head, num_classes, 1, bias=True)
  return Cost(macs, params)


def main(argv: list[str]) -> None:
  from absl import flags

  from tofa_jax import search_space

  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  f = flags.FLAGS
  try:
    if f.config is not None:
      space = search_space.resolve(f.config.model)
    elif f.space is None:
      raise ValueError(f"give --space (one of {list(search_space.SPACE_NAMES)}) or --config")
    else:
      space = search_space.get_space(f.space)
    arch = arch_lib.sample_named(space, f.arch)
    if f.resolution is not None:
      arch = dataclasses.replace(arch, resolution=f.resolution)
    arch_lib.validate(space, arch)
  except ValueError as e:
    sys.exit(f"error: {e}")
  cost = count(space, arch, f.num_classes)
  print(f"space: {space.name}")
  print(f"arch: {arch.to_json(space.per_layer)}")
  print(f"params: {cost.params} ({cost.mparams:.2f} M)")
  print(f"MFLOPs: {cost.mflops:.2f}")


def _define_flags() -> None:
  from absl import flags
  from ml_collections import config_flags

  flags.DEFINE_string("space", None, "search space name")
  flags.DEFINE_string("arch", "max", "max | min | random:SEED | FILE.json")
  flags.DEFINE_integer("resolution", None, "override the arch's resolution")
  flags.DEFINE_integer("num_classes", 1000, "classifier outputs")
  config_flags.DEFINE_config_file("config", None, "config whose `model` names the space",
                                  lock_config=True)


if __name__ == "__main__":
  from absl import app

  _define_flags()
  app.run(main)

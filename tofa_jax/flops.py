"""CLI: MFLOPs and parameters of one subnet.

  python -m tofa_jax.flops --space=tofa --arch=max [--resolution=224]
  python -m tofa_jax.flops --config=configs/custom_space.py --arch=max

prints MFLOPs and params, with MFLOPs as the last line (`space/flops.py` counts).
"""

from __future__ import annotations

import dataclasses
import sys

from tofa_jax.space import arch as arch_lib
from tofa_jax.space import flops, sampling, search_space


def main(argv: list[str]) -> None:
  from absl import flags

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
    arch = sampling.sample_named(space, f.arch)
    if f.resolution is not None:
      arch = dataclasses.replace(arch, resolution=f.resolution)
    arch_lib.validate(space, arch)
  except ValueError as e:
    sys.exit(f"error: {e}")
  cost = flops.count(space, arch, f.num_classes)
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
  from tofa_jax.config import flag_errors

  _define_flags()
  flag_errors.run(main)

"""Subnet samplers: the max, min, middle and median-cost subnets, and random ones pure in
(seed, step).

Sampling is a pure function of `(seed, step)` (and a per-call salt), so every
host draws the same subnets without communicating. `sample_arch` keeps a random
subnet inside the space's MFLOPs window by rejection, as AttentiveNAS does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from tofa_jax.space import arch as arch_lib
from tofa_jax.space import flops
from tofa_jax.space.search_space import SearchSpace


def max_arch(space: SearchSpace) -> arch_lib.Arch:
  return _extreme(space, max)


def min_arch(space: SearchSpace) -> arch_lib.Arch:
  """The all-minimum subnet (smallest choice everywhere, lowest resolution).

  This is the sandwich rule's "min" even when `mflops_window` excludes it: the
  window bounds random samples only (see docs/search_spaces.md).
  """
  return _extreme(space, min)


def middle(choices: tuple[Any, ...]) -> Any:
  """The middle of `choices` in sorted order; of an even count, the lower of the two
  middle ones (kernels (3, 5, 7) -> 5; resolutions (32, 40) -> 32)."""
  return sorted(choices)[(len(choices) - 1) // 2]


def mid_arch(space: SearchSpace) -> arch_lib.Arch:
  """The middle choice of every dimension, resolution included (RSS 6.3.2's "middle":
  kernel 5, expansion 4, depth 3 in the OFA space)."""
  return _extreme(space, middle)


MEDIAN_SAMPLE = 1001  # random subnets median_arch chooses from
_MEDIAN_SALT = 0x6D656431  # its own draws: no training step's salt


@functools.lru_cache(maxsize=16)  # the training schedule asks for it every step
def median_arch(space: SearchSpace, num_classes: int = 1000) -> arch_lib.Arch:
  """The median-cost subnet: the one whose MFLOPs is nearest the median of RSS's subnet
  population, among `MEDIAN_SAMPLE` random subnets (`random_arch`, resolution drawn too)
  of a fixed seed; ties to the first drawn.

  RSS's population spreads evenly over the cost range, MFLOPs of min to max (RSS 6.1:
  evenly spaced sizes; `search/population.py`: equal bins, equal counts), so its median
  cost is the range's midpoint. The middle choice of every dimension (`mid_arch`) is not:
  in lite0 at (32, 48) px it costs 1.3x the min, in the population's bottom bin.
  """
  cost = lambda a: flops.count(space, a, num_classes).mflops  # noqa: E731
  target = (cost(min_arch(space)) + cost(max_arch(space))) / 2
  rng = rng_for(0, 0, _MEDIAN_SALT)
  sample = [random_arch(space, rng) for _ in range(MEDIAN_SAMPLE)]
  return min(sample, key=lambda a: abs(cost(a) - target))  # first of equals


def _extreme(space: SearchSpace, pick: Callable[..., Any]) -> arch_lib.Arch:
  depth = tuple(pick(st.depths) for st in space.stages)
  return arch_lib.Arch(
      resolution=pick(space.resolutions),
      width=tuple(pick(c) for c in space.width_choices),
      depth=depth,
      kernel=tuple((pick(st.kernels),) * d for st, d in zip(space.stages, depth, strict=True)),
      expand=tuple((pick(st.expansions),) * d for st, d in zip(space.stages, depth, strict=True)),
  )


def rng_for(seed: int, step: int, salt: int = 0) -> np.random.Generator:
  """Host RNG that depends only on (seed, step, salt): identical on every host."""
  return np.random.default_rng([seed & 0xFFFFFFFF, step & 0xFFFFFFFF, salt & 0xFFFFFFFF])


ELASTIC = ("kernel", "depth", "expand", "width")  # the dimensions `random_arch` can vary


def random_arch(space: SearchSpace, rng: np.random.Generator,
                resolution: int | None = None, vary: tuple[str, ...] = ELASTIC
                ) -> arch_lib.Arch:
  """Uniformly random choice in every dimension of `vary` (ignores the MFLOPs window);
  the others at their largest (progressive shrinking's phases fix some at the max)."""
  draw = lambda c: c[int(rng.integers(len(c)))]  # noqa: E731
  pick = {d: draw if d in vary else max for d in ELASTIC}
  res = draw(space.resolutions) if resolution is None else resolution
  width = tuple(pick["width"](c) for c in space.width_choices)
  depth, kernel, expand = [], [], []
  for st in space.stages:
    d = pick["depth"](st.depths)
    depth.append(d)
    if space.per_layer:
      kernel.append(tuple(pick["kernel"](st.kernels) for _ in range(d)))
      expand.append(tuple(pick["expand"](st.expansions) for _ in range(d)))
    else:
      kernel.append((pick["kernel"](st.kernels),) * d)
      expand.append((pick["expand"](st.expansions),) * d)
  return arch_lib.Arch(res, width, tuple(depth), tuple(kernel), tuple(expand))


def sample_arch(space: SearchSpace, seed: int, step: int, salt: int = 0,
                resolution: int | None = None, max_tries: int = 1000) -> arch_lib.Arch:
  """Random subnet for (seed, step, salt), inside `space.mflops_window` if set.

  Rejection sampling, as AttentiveNAS's `sample_active_subnet_within_range`.
  """
  rng = rng_for(seed, step, salt)
  if space.mflops_window is None:
    return random_arch(space, rng, resolution)
  lo, hi = space.mflops_window
  for _ in range(max_tries):
    arch = random_arch(space, rng, resolution)
    if lo <= flops.count(space, arch).mflops <= hi:
      return arch
  raise ValueError(f"space.mflops_window={space.mflops_window} admitted none of {max_tries} "
                   f"random subnets of space {space.name}; widen the window")


def sample_named(space: SearchSpace, spec: str) -> arch_lib.Arch:
  """Parses `max`, `min`, `random:SEED` or a JSON file path."""
  if spec == "max":
    return max_arch(space)
  if spec == "min":
    return min_arch(space)
  if spec.startswith("random:"):
    return sample_arch(space, seed=int(spec.split(":", 1)[1]), step=0)
  try:
    with open(spec) as f:
      return arch_lib.validate(space, arch_lib.Arch.from_json(f.read()))
  except FileNotFoundError:
    raise ValueError(f"--arch={spec!r}: expected max, min, random:SEED or an existing JSON "
                     "file") from None

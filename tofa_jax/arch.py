"""Architectures as data: a typed subnet description, JSON forms and samplers.

An `Arch` names one subnet of a `SearchSpace`. It round-trips through JSON in
the AttentiveNAS/AlphaNet subnet format `{resolution, width, depth,
kernel_size, expand_ratio}`; for per-layer spaces (OFA) `kernel_size[s]` and
`expand_ratio[s]` are lists with one entry per active layer of stage s.

`to_arrays` turns an Arch into the fixed-shape integer/float arrays that the
supernet's `apply` takes, so every subnet at one resolution shares one compiled
program.

Sampling is a pure function of `(seed, step)` (and a per-call salt), so every
host draws the same subnets without communicating.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tofa_jax.search_space import SearchSpace


@dataclasses.dataclass(frozen=True)
class Arch:
  """One subnet.

  Attributes:
    resolution: input resolution.
    width: active widths of stem, every stage, and the head (n_stages + 2).
    depth: active layers per stage.
    kernel: per stage, the kernel size of each active layer (len == depth[s]).
    expand: per stage, the expansion ratio of each active layer.
  """

  resolution: int
  width: tuple[int, ...]
  depth: tuple[int, ...]
  kernel: tuple[tuple[int, ...], ...]
  expand: tuple[tuple[float, ...], ...]

  def to_dict(self, per_layer: bool = False) -> dict[str, Any]:
    """AttentiveNAS-style dict. Stage-level spaces store one value per stage."""
    if per_layer:
      ks = [list(k) for k in self.kernel]
      es = [[_num(e) for e in es] for es in self.expand]
    else:
      ks = [k[0] for k in self.kernel]
      es = [_num(e[0]) for e in self.expand]
    return {"resolution": self.resolution, "width": list(self.width), "depth": list(self.depth),
            "kernel_size": ks, "expand_ratio": es}

  def to_json(self, per_layer: bool = False) -> str:
    return json.dumps(self.to_dict(per_layer))

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> Arch:
    """Reads the AttentiveNAS/AlphaNet format (or this class's per-layer form).

    A scalar `kernel_size[s]`/`expand_ratio[s]` applies to every layer of stage s.
    """
    missing = [k for k in ("resolution", "width", "depth", "kernel_size", "expand_ratio")
               if k not in d]
    if missing:
      raise ValueError(f"arch is missing fields {missing}; an arch needs resolution, width, "
                       "depth, kernel_size, expand_ratio")
    depth = tuple(int(x) for x in d["depth"])

    def per_stage(field: str, cast: Callable[[Any], Any]) -> tuple[tuple[Any, ...], ...]:
      values = d[field]
      if len(values) != len(depth):
        raise ValueError(f"arch.{field} has {len(values)} entries but arch.depth has "
                         f"{len(depth)}; give one entry per stage")
      out = []
      for s, v in enumerate(values):
        if isinstance(v, (list, tuple)):
          if len(v) != depth[s]:
            raise ValueError(f"arch.{field}[{s}] has {len(v)} entries; stage {s} has depth "
                             f"{depth[s]}, so give {depth[s]} (or a single number)")
          out.append(tuple(cast(x) for x in v))
        else:
          out.append((cast(v),) * depth[s])
      return tuple(out)

    return cls(resolution=int(d["resolution"]), width=tuple(int(x) for x in d["width"]),
               depth=depth, kernel=per_stage("kernel_size", int),
               expand=per_stage("expand_ratio", float))

  @classmethod
  def from_json(cls, text: str) -> Arch:
    return cls.from_dict(json.loads(text))


def _num(x: float) -> int | float:
  return int(x) if float(x).is_integer() else float(x)


def _allowed(name: str, value: Any, choices: tuple[Any, ...]) -> None:
  if value not in choices:
    raise ValueError(f"arch.{name}={_num(value) if isinstance(value, float) else value} is "
                     f"outside the space; allowed values: {[_num(c) for c in choices]}")


def validate(space: SearchSpace, arch: Arch) -> Arch:
  """Raises ValueError naming the field and allowed values if arch is not in space."""
  _allowed("resolution", arch.resolution, space.resolutions)
  n = space.n_stages
  if len(arch.width) != n + 2:
    raise ValueError(f"arch.width has {len(arch.width)} entries; space {space.name} needs "
                     f"{n + 2} (stem, {n} stages, head)")
  if len(arch.depth) != n:
    raise ValueError(f"arch.depth has {len(arch.depth)} entries; space {space.name} needs {n}")
  for i, (w, choices) in enumerate(zip(arch.width, space.width_choices, strict=True)):
    _allowed(f"width[{i}]", w, choices)
  for s, st in enumerate(space.stages):
    _allowed(f"depth[{s}]", arch.depth[s], st.depths)
    for field, values, choices in (("kernel_size", arch.kernel[s], st.kernels),
                                   ("expand_ratio", arch.expand[s], st.expansions)):
      if len(values) != arch.depth[s]:
        raise ValueError(f"arch.{field}[{s}] has {len(values)} entries; stage {s} has depth "
                         f"{arch.depth[s]}")
      for layer, v in enumerate(values):
        _allowed(f"{field}[{s}][{layer}]", v, choices)
      if not space.per_layer and len(set(values)) > 1:
        raise ValueError(f"arch.{field}[{s}]={list(values)} varies across layers, but space "
                         f"{space.name} chooses one {field} per stage")
  return arch


def max_arch(space: SearchSpace) -> Arch:
  return _extreme(space, max)


def min_arch(space: SearchSpace) -> Arch:
  """The all-minimum subnet (smallest choice everywhere, lowest resolution).

  This is the sandwich rule's "min" even when `mflops_window` excludes it: the
  window bounds random samples only (see docs/search_spaces.md).
  """
  return _extreme(space, min)


def _extreme(space: SearchSpace, pick: Callable[..., Any]) -> Arch:
  depth = tuple(pick(st.depths) for st in space.stages)
  return Arch(
      resolution=pick(space.resolutions),
      width=tuple(pick(c) for c in space.width_choices),
      depth=depth,
      kernel=tuple((pick(st.kernels),) * d for st, d in zip(space.stages, depth, strict=True)),
      expand=tuple((pick(st.expansions),) * d for st, d in zip(space.stages, depth, strict=True)),
  )


def rng_for(seed: int, step: int, salt: int = 0) -> np.random.Generator:
  """Host RNG that depends only on (seed, step, salt): identical on every host."""
  return np.random.default_rng([seed & 0xFFFFFFFF, step & 0xFFFFFFFF, salt & 0xFFFFFFFF])


def random_arch(space: SearchSpace, rng: np.random.Generator,
                resolution: int | None = None) -> Arch:
  """Uniformly random choice in every dimension (ignores the MFLOPs window)."""
  choose = lambda c: c[int(rng.integers(len(c)))]  # noqa: E731
  res = choose(space.resolutions) if resolution is None else resolution
  width = tuple(choose(c) for c in space.width_choices)
  depth, kernel, expand = [], [], []
  for st in space.stages:
    d = choose(st.depths)
    depth.append(d)
    if space.per_layer:
      kernel.append(tuple(choose(st.kernels) for _ in range(d)))
      expand.append(tuple(choose(st.expansions) for _ in range(d)))
    else:
      kernel.append((choose(st.kernels),) * d)
      expand.append((choose(st.expansions),) * d)
  return Arch(res, width, tuple(depth), tuple(kernel), tuple(expand))


def sample_arch(space: SearchSpace, seed: int, step: int, salt: int = 0,
                resolution: int | None = None, max_tries: int = 1000) -> Arch:
  """Random subnet for (seed, step, salt), inside `space.mflops_window` if set.

  Rejection sampling, as AttentiveNAS's `sample_active_subnet_within_range`.
  """
  rng = rng_for(seed, step, salt)
  if space.mflops_window is None:
    return random_arch(space, rng, resolution)
  from tofa_jax import flops  # local import: flops imports this module

  lo, hi = space.mflops_window
  for _ in range(max_tries):
    arch = random_arch(space, rng, resolution)
    if lo <= flops.count(space, arch).mflops <= hi:
      return arch
  raise ValueError(f"space.mflops_window={space.mflops_window} admitted none of {max_tries} "
                   f"random subnets of space {space.name}; widen the window")


def sample_named(space: SearchSpace, spec: str) -> Arch:
  """Parses `max`, `min`, `random:SEED` or a JSON file path."""
  if spec == "max":
    return max_arch(space)
  if spec == "min":
    return min_arch(space)
  if spec.startswith("random:"):
    return sample_arch(space, seed=int(spec.split(":", 1)[1]), step=0)
  try:
    with open(spec) as f:
      return validate(space, Arch.from_json(f.read()))
  except FileNotFoundError:
    raise ValueError(f"--arch={spec!r}: expected max, min, random:SEED or an existing JSON "
                     "file") from None


def to_arrays(space: SearchSpace, arch: Arch) -> dict[str, np.ndarray]:
  """Fixed-shape arrays for `Supernet.apply`; inactive layers repeat the last value."""
  n, d_max = space.n_stages, space.max_depth
  kernel = np.zeros((n, d_max), np.int32)
  expand = np.zeros((n, d_max), np.float32)
  for s in range(n):
    ks, es = arch.kernel[s], arch.expand[s]
    kernel[s] = list(ks) + [ks[-1]] * (d_max - len(ks))
    expand[s] = list(es) + [es[-1]] * (d_max - len(es))
  return {
      "width": np.asarray(arch.width, np.int32),
      "depth": np.asarray(arch.depth, np.int32),
      "kernel": kernel,
      "expand": expand,
  }


def stack_arrays(arrays: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """Stacks per-arch arrays along a new leading axis (e.g. the sandwich's 4)."""
  return {k: np.stack([a[k] for a in arrays]) for k in arrays[0]}

"""Architectures as data: a typed subnet description, its JSON forms and its arrays.

An `Arch` names one subnet of a `SearchSpace`. It round-trips through JSON in
the AttentiveNAS/AlphaNet subnet format `{resolution, width, depth,
kernel_size, expand_ratio}`; for per-layer spaces (OFA) `kernel_size[s]` and
`expand_ratio[s]` are lists with one entry per active layer of stage s.

`to_arrays` turns an Arch into the fixed-shape integer/float arrays that the
supernet's `apply` takes, so every subnet at one resolution shares one compiled
program.

Samplers (max, min, random) are in `sampling.py`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tofa_jax.space.search_space import SearchSpace


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

"""Subnets as genes, for search: sampling, mutation and crossover under a budget,
optionally constrained to contain a reference subnet (REG-NAS CAS).

Every elastic choice is one gene holding an index into its sorted choices:
resolution, each width, each stage's depth, and each stage's kernel and
expansion (one per layer up to the maximum depth in per-layer spaces).

Constrained architecture search (REG-NAS section 3.2): a target contains every
weight of a reference when each elastic dimension is at least the reference's:
more layers per stage (new layers come after the reference's, rule 1), more
channels (rule 2), larger kernels in the reference's layers (rule 3), and larger
expansions (more channels again). Resolution does not change the weights and is
free. The constraint is a per-gene lower bound, plus one exception that bounds
cannot express: in spaces with AttentiveNAS shortcuts a first layer whose input
and output widths differ carries a 1x1 shortcut conv, which disappears when a
wider input makes them equal; a target must keep every shortcut conv of the
reference. Candidates that lose one are drawn again. In kernel-transform spaces
(OFA) a larger kernel holds the smaller one's base weights but not its
transform matrix, as in REG-NAS's OFA experiments.

Budgets are met by repair: while p(arch) > budget, one active gene above its
lower bound steps down one choice. Every step lowers a gene, so repair ends, at
the lower bound (the reference, or the smallest subnet) at the latest.

A floor share s > 0 (`palette.search_floor`) also keeps p(arch) >= s * budget, so
that the searches of one budget compare subnets of about the same cost: after
repair, genes picked at random step up one choice each while the raise keeps p
within the budget (and the reference contained), until p reaches the floor or no
gene can rise. Draws still below it are drawn again. With s = 0 nothing changes,
random draws included.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from tofa_jax.space import arch as arch_lib
from tofa_jax.space import plan as plan_lib
from tofa_jax.space.search_space import SearchSpace


class InfeasibleBudget(ValueError):
  pass


@dataclasses.dataclass(frozen=True)
class Gene:
  kind: str  # resolution | width | depth | kernel | expand
  choices: tuple
  index: int = -1  # width index or stage
  layer: int = -1  # per-layer genes only


def contains(space: SearchSpace, target: arch_lib.Arch, reference: arch_lib.Arch) -> bool:
  """Whether `target` holds every weight of `reference` (REG-NAS eq. 3)."""
  if any(t < r for t, r in zip(target.width, reference.width, strict=True)):
    return False
  for s, d in enumerate(reference.depth):
    if target.depth[s] < d:
      return False
    for layer in range(d):
      if (target.kernel[s][layer] < reference.kernel[s][layer]
          or target.expand[s][layer] < reference.expand[s][layer]):
        return False
  ref_convs = {lp.name for lp in plan_lib.plan(space, reference) if "conv" in lp.residual}
  if ref_convs:
    tgt_convs = {lp.name for lp in plan_lib.plan(space, target) if "conv" in lp.residual}
    return ref_convs <= tgt_convs
  return True


class Genome:
  """The genes of a space (at the given resolutions) and Arch <-> indices."""

  def __init__(self, space: SearchSpace, resolutions: Sequence[int] | None = None):
    self.space = space
    res = tuple(sorted(resolutions or space.resolutions))
    bad = [r for r in res if r not in space.resolutions]
    if bad:
      raise ValueError(f"palette.resolutions={list(res)}: {bad} are not resolutions of space "
                       f"{space.name!r} {list(space.resolutions)}")
    genes = [Gene("resolution", res)]
    genes += [Gene("width", tuple(sorted(c)), i) for i, c in enumerate(space.width_choices)]
    for s, st in enumerate(space.stages):
      genes.append(Gene("depth", tuple(sorted(st.depths)), s))
      layers = range(st.max_depth) if space.per_layer else [-1]
      for kind, choices in (("kernel", st.kernels), ("expand", st.expansions)):
        genes += [Gene(kind, tuple(sorted(choices)), s, layer) for layer in layers]
    self.genes = genes
    self._depth_gene = {g.index: i for i, g in enumerate(genes) if g.kind == "depth"}

  def __len__(self) -> int:
    return len(self.genes)

  def _value(self, arch: arch_lib.Arch, g: Gene):
    if g.kind == "resolution":
      return arch.resolution
    if g.kind == "width":
      return arch.width[g.index]
    if g.kind == "depth":
      return arch.depth[g.index]
    values = (arch.kernel if g.kind == "kernel" else arch.expand)[g.index]
    return values[min(max(g.layer, 0), len(values) - 1)]  # absent layers repeat the last

  def encode(self, arch: arch_lib.Arch) -> list[int]:
    arch_lib.validate(self.space, arch)
    out = []
    for g in self.genes:
      v = self._value(arch, g)
      if v not in g.choices:
        raise ValueError(f"arch {g.kind}={v} is outside the searched choices {list(g.choices)}")
      out.append(g.choices.index(v))
    return out

  def decode(self, idx: Sequence[int]) -> arch_lib.Arch:
    val = [g.choices[i] for g, i in zip(self.genes, idx, strict=True)]
    res, width, depth = None, [0] * (self.space.n_stages + 2), [0] * self.space.n_stages
    per_stage: dict[tuple[str, int], list] = {}
    for g, v in zip(self.genes, val, strict=True):
      if g.kind == "resolution":
        res = v
      elif g.kind == "width":
        width[g.index] = v
      elif g.kind == "depth":
        depth[g.index] = v
      else:
        per_stage.setdefault((g.kind, g.index), []).append(v)
    kernel, expand = [], []
    for s, d in enumerate(depth):
      for kind, out in (("kernel", kernel), ("expand", expand)):
        vs = per_stage[(kind, s)]
        out.append(tuple(vs[:d]) if self.space.per_layer else (vs[0],) * d)
    return arch_lib.Arch(res, tuple(width), tuple(depth), tuple(kernel), tuple(expand))

  def floor(self, reference: arch_lib.Arch | None = None) -> list[int]:
    """Per-gene lower bounds: 0, or the reference's choice where CAS binds."""
    if reference is None:
      return [0] * len(self.genes)
    ref = self.encode(reference)
    out = []
    for g, r in zip(self.genes, ref, strict=True):
      binds = g.kind in ("width", "depth") or (
          g.kind in ("kernel", "expand") and g.layer < reference.depth[g.index])
      out.append(r if binds else 0)
    return out

  def active(self, idx: Sequence[int]) -> list[int]:
    """Positions of the genes that shape the arch (per-layer genes past the depth don't)."""
    out = []
    for i, g in enumerate(self.genes):
      if g.layer >= 0:
        depth = self.genes[self._depth_gene[g.index]].choices[idx[self._depth_gene[g.index]]]
        if g.layer >= depth:
          continue
      out.append(i)
    return out


class Sampler:
  """Random, mutated and crossed-over subnets with floor_share * budget <= cost(arch)
  <= budget that contain `reference` (when given)."""

  def __init__(self, genome: Genome, cost: Callable[[arch_lib.Arch], float], budget: float,
               rng: np.random.Generator, reference: arch_lib.Arch | None = None,
               floor_share: float = 0.0):
    self.genome, self.cost, self.budget, self.rng = genome, cost, float(budget), rng
    self.reference = reference
    if not 0 <= floor_share < 1:
      raise ValueError(f"palette.search_floor={floor_share}; allowed: 0 <= share < 1 of the "
                       "budget")
    self.least = float(floor_share) * self.budget
    self.lower = genome.floor(reference)
    smallest = genome.decode(self.lower)
    if cost(smallest) > self.budget:
      what = "the reference subnet" if reference is not None else "the smallest subnet"
      raise InfeasibleBudget(f"budget {self.budget:.4g} is below {what} "
                             f"({cost(smallest):.4g}); raise palette.budgets")

  def in_set(self, arch: arch_lib.Arch) -> bool:
    fits = self.least <= self.cost(arch) <= self.budget
    return fits and (self.reference is None
                     or contains(self.genome.space, arch, self.reference))

  def random(self) -> arch_lib.Arch:
    def draw():
      return [int(self.rng.integers(lo, len(g.choices)))
              for g, lo in zip(self.genome.genes, self.lower, strict=True)]
    smallest = self.genome.decode(self.lower)
    fallback = self._repair(list(self.lower)) if self.least > 0 else smallest
    return self._first_in_set(draw, fallback=fallback)

  def mutate(self, arch: arch_lib.Arch, prob: float) -> arch_lib.Arch:
    def draw():
      idx = self.genome.encode(arch)
      for i, (g, lo) in enumerate(zip(self.genome.genes, self.lower, strict=True)):
        if self.rng.random() < prob:
          idx[i] = int(self.rng.integers(lo, len(g.choices)))
      return idx
    return self._first_in_set(draw, fallback=arch)

  def crossover(self, a: arch_lib.Arch, b: arch_lib.Arch) -> arch_lib.Arch:
    ia, ib = self.genome.encode(a), self.genome.encode(b)

    def draw():
      pick = self.rng.random(len(ia)) < 0.5
      return [x if p else y for x, y, p in zip(ia, ib, pick, strict=True)]
    return self._first_in_set(draw, fallback=a)

  def _first_in_set(self, draw: Callable[[], list[int]], fallback: arch_lib.Arch,
                    tries: int = 50) -> arch_lib.Arch:
    """Repairs draws until one is in the set (the budget always holds after repair;
    a lost shortcut conv or a cost below the floor rejects); else `fallback`, a member
    (or, where no draw reached the floor, the nearest to it)."""
    for _ in range(tries):
      arch = self._repair(draw())
      if self.cost(arch) >= self.least and (
          self.reference is None or contains(self.genome.space, arch, self.reference)):
        return arch
    return fallback

  def _repair(self, idx: list[int]) -> arch_lib.Arch:
    idx = [max(i, lo) for i, lo in zip(idx, self.lower, strict=True)]
    arch = self.genome.decode(idx)
    while self.cost(arch) > self.budget:
      movable = [i for i in self.genome.active(idx) if idx[i] > self.lower[i]]
      # Non-empty: the lower bound itself fits (checked in __init__).
      i = movable[int(self.rng.integers(len(movable)))]
      idx[i] -= 1
      arch = self.genome.decode(idx)
    return self._grow(idx, arch) if self.least > 0 else arch

  def _grow(self, idx: list[int], arch: arch_lib.Arch) -> arch_lib.Arch:
    """Raises genes picked at random one choice each, keeping the raises that stay
    within the budget (and keep the reference's shortcut convs), until `arch` reaches
    the floor or no gene can rise."""
    stuck: set[int] = set()  # a raise that broke the budget breaks it after more raises
    while self.cost(arch) < self.least:
      movable = [i for i in self.genome.active(idx)
                 if idx[i] + 1 < len(self.genome.genes[i].choices) and i not in stuck]
      if not movable:
        break
      i = movable[int(self.rng.integers(len(movable)))]
      idx[i] += 1
      raised = self.genome.decode(idx)
      if self.cost(raised) <= self.budget and (
          self.reference is None or contains(self.genome.space, raised, self.reference)):
        arch = raised
      else:
        idx[i] -= 1
        stuck.add(i)
    return arch

"""Evolutionary and random search over subnets (TOFA eq. 5; REG-NAS section 3.4).

The evolutionary search follows AttentiveNAS/AlphaNet's: an initial population
of random subnets that fit the budget; every generation keeps the best
`parents`, and adds `num_mutations` mutants of random parents (each gene
resampled with probability `mutate_prob`) and `num_crossovers` children of two
random parents (each gene from either). Random search draws `samples` subnets.
Fitness is any function of an arch (validation top-1, a REG-NAS reward);
it is evaluated once per distinct arch.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

from tofa_jax.space import arch as arch_lib
from tofa_jax.space.genome import Sampler


@dataclasses.dataclass(frozen=True)
class EvolutionConfig:
  population: int = 32
  generations: int = 10
  parents: int = 8
  num_mutations: int = 16
  num_crossovers: int = 16
  mutate_prob: float = 0.1

  @property
  def most_evaluations(self) -> int:
    """The most distinct subnets one search evaluates: the first population, then
    each generation's mutants and children."""
    return self.population + self.generations * (self.num_mutations + self.num_crossovers)

  def check(self) -> None:
    for name in ("population", "generations", "parents"):
      if getattr(self, name) < 1:
        raise ValueError(f"palette.evolution.{name}={getattr(self, name)}; use at least 1")
    if self.parents > self.population:
      raise ValueError(f"palette.evolution.parents={self.parents} exceeds "
                       f"palette.evolution.population={self.population}")
    if not 0.0 <= self.mutate_prob <= 1.0:
      raise ValueError(f"palette.evolution.mutate_prob={self.mutate_prob}; use a value in [0, 1]")


@dataclasses.dataclass
class SearchResult:
  best: arch_lib.Arch
  fitness: float
  history: list[tuple[arch_lib.Arch, float]]  # every distinct arch evaluated, in order


class _Memo:
  def __init__(self, fitness: Callable[[arch_lib.Arch], float]):
    self.fitness, self.seen = fitness, {}

  def __call__(self, arch: arch_lib.Arch) -> float:
    if arch not in self.seen:
      self.seen[arch] = float(self.fitness(arch))
    return self.seen[arch]

  def result(self) -> SearchResult:
    history = list(self.seen.items())
    best, fit = max(history, key=lambda kv: kv[1])  # first of equals
    return SearchResult(best, fit, history)


def _pick(parents: list[arch_lib.Arch], rng) -> arch_lib.Arch:
  return parents[int(rng.integers(len(parents)))]


def evolve(sampler: Sampler, fitness: Callable[[arch_lib.Arch], float],
           cfg: EvolutionConfig) -> SearchResult:
  cfg.check()
  memo, rng = _Memo(fitness), sampler.rng
  population = [sampler.random() for _ in range(cfg.population)]
  for _ in range(cfg.generations):
    ranked = sorted(dict.fromkeys(population), key=memo, reverse=True)
    parents = ranked[:cfg.parents]
    pick = functools.partial(_pick, parents, rng)
    mutants = [sampler.mutate(pick(), cfg.mutate_prob) for _ in range(cfg.num_mutations)]
    children = [sampler.crossover(pick(), pick()) for _ in range(cfg.num_crossovers)]
    population = parents + mutants + children
  for arch in population:
    memo(arch)
  return memo.result()


def random_search(sampler: Sampler, fitness: Callable[[arch_lib.Arch], float],
                  samples: int) -> SearchResult:
  if samples < 1:
    raise ValueError(f"palette.random_samples={samples}; use at least 1")
  memo = _Memo(fitness)
  for _ in range(samples):
    memo(sampler.random())
  return memo.result()

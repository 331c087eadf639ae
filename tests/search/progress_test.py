"""SearchProgress: counted evaluations, a line at most every `every_s`, the time left
at the mean rate; EvolutionConfig.most_evaluations bounds what evolve evaluates."""

from __future__ import annotations

import numpy as np

from tofa_jax.runtime import progress as run_progress
from tofa_jax.search import evolution, progress
from tofa_jax.space import genome
from tofa_jax.space.search_space import get_space


def test_lines_count_evaluations_and_time_left(monkeypatch):
  now = [0.0]
  monkeypatch.setattr(run_progress.time, "perf_counter", lambda: now[0])
  lines = []
  prog = progress.SearchProgress(lines.append, "palette: random", most=10, every_s=30.0)

  def slow(arch):  # 20 s per subnet
    now[0] += 20.0
    return float(arch)

  fitness = prog.wrap(slow)
  assert [fitness(a) for a in range(4)] == [0.0, 1.0, 2.0, 3.0]
  # A line at 40 s (2 done) and 80 s (4 done): 30 s apart or more.
  assert lines == [
      "palette: random: 2 of at most 10 subnets evaluated, 20.00 s each, at most 2.7 min left",
      "palette: random: 4 of at most 10 subnets evaluated, 20.00 s each, at most 2.0 min left"]


def test_evolve_evaluates_at_most_most_evaluations():
  space = get_space("tiny")
  g = genome.Genome(space, space.resolutions)
  cost = lambda a: 0.0  # noqa: E731  every subnet fits
  cfg = evolution.EvolutionConfig(population=6, generations=3, parents=2, num_mutations=3,
                                  num_crossovers=2)
  calls = []
  result = evolution.evolve(genome.Sampler(g, cost, 1.0, np.random.default_rng(0)),
                            lambda a: calls.append(a) or float(len(calls)), cfg)
  assert cfg.most_evaluations == 6 + 3 * (3 + 2)
  assert len(calls) == len(set(calls)) == len(result.history) <= cfg.most_evaluations


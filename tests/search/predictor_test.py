"""The accuracy predictor (TOFA 4.6 (a)): encoding, fit, and evolution on its output."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from tofa_jax.search import evolution, predictor
from tofa_jax.space import flops, genome, sampling
from tofa_jax.space.search_space import get_space


def _mflops(space):
  return lambda a: flops.count(space, a).mflops


def test_encoding_is_one_hot_per_active_gene_and_zero_for_unused_layers():
  space = get_space("tiny_ofa")  # per-layer genes: layers past a stage's depth are unused
  g = genome.Genome(space)
  # resolution 2 + widths 5 x 1 + stage 0 (depth 1, kernel 1, expand 1) + stage 1
  # (depth 3, 3 layers x 3 kernels, 3 x 3 expansions) + stage 2 (2, 3 x 3, 3 x 2)
  assert predictor.encoding_size(g) == 48 == sum(len(x.choices) for x in g.genes)
  archs = [sampling.sample_arch(space, seed=3, step=i) for i in range(12)]
  x = predictor.encode(g, archs)
  assert x.shape == (12, 48) and x.dtype == np.float32
  offsets = np.cumsum([0] + [len(x.choices) for x in g.genes])
  unused = 0
  for row, arch in zip(x, archs, strict=True):
    idx = g.encode(arch)
    active = set(g.active(idx))
    for i in range(len(g.genes)):
      block = row[offsets[i]:offsets[i + 1]]
      want = np.zeros_like(block)
      if i in active:
        want[idx[i]] = 1.0
      else:
        unused += 1
      np.testing.assert_array_equal(block, want)
  assert unused > 0
  # Unused genes do not reach the encoding: other values there, the same subnet and row.
  deep = [i for i, gene in enumerate(g.genes) if gene.layer == 2 and gene.index == 1]
  idx = [0] * len(g.genes)  # stage 1 at depth 1: its layer-2 kernel and expansion unused
  other = list(idx)
  for i in deep:
    other[i] = len(g.genes[i].choices) - 1
  assert g.decode(idx) == g.decode(other)
  np.testing.assert_array_equal(predictor.encode(g, [g.decode(idx)]),
                                predictor.encode(g, [g.decode(other)]))


def test_kendall_tau_is_tau_b():
  # Pairs: 3 concordant, 1 discordant, one tied in a only, one tied in b only (of 6), so
  # tau-b = (3 - 1) / sqrt((6 - 1) * (6 - 1)) = 0.4 (tau-a would be 2 / 6).
  assert predictor.kendall_tau([1.0, 2.0, 2.0, 3.0], [1.0, 3.0, 2.0, 2.0]) == pytest.approx(
      0.4, abs=1e-12)
  assert predictor.kendall_tau([3.0, 2.0, 1.0], [0.0, 1.0, 2.0]) == -1.0
  assert np.isnan(predictor.kendall_tau([1.0, 1.0, 1.0], [0.0, 1.0, 2.0]))


def test_samples_spread_over_the_range_and_the_mlp_fits_a_linear_function():
  space = get_space("tiny")
  g = genome.Genome(space)
  cost = _mflops(space)
  archs = predictor.spread_samples(g, cost, 300, np.random.default_rng(0))
  assert len(archs) == len(set(archs)) == 300
  lo, hi = cost(sampling.min_arch(space)), cost(g.decode([len(x.choices) - 1 for x in g.genes]))
  counts = np.histogram([cost(a) for a in archs], np.linspace(lo, hi, 11))[0]
  assert counts.sum() == 300 and counts.min() >= 10  # every tenth of the range sampled

  x = predictor.encode(g, archs)
  w = np.random.default_rng(1).normal(size=x.shape[1])
  top1 = 0.5 + 0.05 * (x @ w)
  cfg = predictor.PredictorConfig(samples=300, epochs=150)
  model, info = predictor.fit(g, archs, top1, cfg, seed=0)
  assert (info["samples"], info["trained_on"], info["held_out"]) == (300, 240, 60)
  assert info["encoding_size"] == x.shape[1]
  assert info["rmse"] < 0.15 * np.std(top1) and info["kendall_tau"] > 0.9, info
  assert info["train_rmse"] < info["rmse"]
  # The figures are those of the returned model, on the seeded 20 % it did not train on.
  held = np.random.default_rng(0).permutation(300)[:60]
  pred = model.predict([archs[i] for i in held])
  assert info["rmse"] == pytest.approx(np.sqrt(np.mean((pred - top1[held]) ** 2)), rel=1e-5)
  assert model(archs[held[0]]) == pytest.approx(pred[0], rel=1e-6)
  # Deterministic for a seed.
  again, info_again = predictor.fit(g, archs, top1, cfg, seed=0)
  assert info_again == info
  np.testing.assert_array_equal(again.predict(archs), model.predict(archs))


def test_evolution_with_a_predictor_as_fitness_finds_its_argmax_within_the_budget():
  space = get_space("tiny")
  g = genome.Genome(space, (32,))
  cost = _mflops(space)
  archs = [g.decode(list(i)) for i in
           itertools.product(*[range(len(x.choices)) for x in g.genes])]  # all 12,288
  x = predictor.encode(g, archs)
  w = np.random.default_rng(0).normal(size=x.shape[1]).astype(np.float32)
  params = {"params": {"Dense_0": {"kernel": jnp.asarray(w[:, None]), "bias": jnp.zeros(1)}}}
  model = predictor.AccuracyPredictor(g, (), params, mean=0.0, scale=1.0)  # linear
  scores = model.predict_encoded(x)
  np.testing.assert_allclose(scores, x @ w, rtol=1e-5, atol=1e-5)

  costs = np.array([cost(a) for a in archs])
  budget = (costs.min() + costs.max()) / 2
  fits = np.flatnonzero(costs <= budget)
  best = archs[fits[np.argmax(scores[fits])]]  # brute force
  cfg = evolution.EvolutionConfig(population=16, generations=25, parents=4, num_mutations=12,
                                  num_crossovers=8, mutate_prob=0.15)
  result = evolution.evolve(genome.Sampler(g, cost, budget, np.random.default_rng(0)), model,
                            cfg)
  assert result.best == best
  assert result.fitness == pytest.approx(float(scores[fits].max()), rel=1e-5)
  assert all(cost(a) <= budget for a, _ in result.history)
  assert len(result.history) < len(fits)  # it searched, rather than scoring every subnet


def test_config_errors_name_the_key():
  with pytest.raises(ValueError, match=r"^palette.predictor.holdout=0.001 with palette."
                                       r"predictor.samples=1000 leaves 1 held out"):
    predictor.PredictorConfig(holdout=0.001).check()
  with pytest.raises(ValueError, match=r"^palette.predictor.epochs=0; use at least 1"):
    predictor.PredictorConfig(epochs=0).check()
  predictor.PredictorConfig(holdout=0.0).check()  # no held-out fit: allowed

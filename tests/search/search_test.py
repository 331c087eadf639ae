"""Evolutionary/random search, and evaluating many subnets with one program per resolution."""


import jax
import numpy as np
import pytest

from helpers.compiles import count_compiles
from helpers.model import jit_apply
from tofa_jax.data import augment, datasets, input_pipeline
from tofa_jax.model.bn_calibration import BNCalibrator
from tofa_jax.search import evolution
from tofa_jax.search.subnet_eval import SubnetEvaluator
from tofa_jax.space import arch as A
from tofa_jax.space import flops, genome, sampling
from tofa_jax.space.search_space import get_space
from tofa_jax.weights import export

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _mflops(space):
  return lambda a: flops.count(space, a).mflops


def test_evolution_finds_the_optimum_of_a_synthetic_fitness():
  space = get_space("tiny")
  g = genome.Genome(space)
  cost = _mflops(space)
  target = sampling.sample_arch(space, seed=5, step=0)
  want = np.asarray(g.encode(target))
  calls = []

  def fitness(arch):  # 0 at the target, lower the more genes differ
    calls.append(arch)
    return -float(np.abs(np.asarray(g.encode(arch)) - want).sum())

  budget = cost(sampling.max_arch(space))
  cfg = evolution.EvolutionConfig(population=16, generations=25, parents=4, num_mutations=12,
                                  num_crossovers=8, mutate_prob=0.15)
  result = evolution.evolve(genome.Sampler(g, cost, budget, np.random.default_rng(0)),
                            fitness, cfg)
  assert result.best == target and result.fitness == 0.0
  assert len(calls) == len(set(calls)) == len(result.history)  # each arch evaluated once

  # Under a budget below the target's cost, every candidate fits the budget.
  tight = (cost(sampling.min_arch(space)) + cost(target)) / 2
  result = evolution.evolve(genome.Sampler(g, cost, tight, np.random.default_rng(1)),
                            fitness, cfg)
  assert all(cost(a) <= tight for a, _ in result.history)
  assert result.fitness < 0.0

  best = evolution.random_search(genome.Sampler(g, cost, budget, np.random.default_rng(2)),
                                 fitness, 7)
  assert len(best.history) <= 7 and best.fitness == max(f for _, f in best.history)


def test_evolution_config_errors_name_the_key():
  with pytest.raises(ValueError, match="palette.evolution.parents=9 exceeds"):
    evolution.EvolutionConfig(population=4, parents=9).check()
  with pytest.raises(ValueError, match="palette.evolution.mutate_prob"):
    evolution.EvolutionConfig(mutate_prob=1.5).check()


@pytest.fixture(scope="module")
def digits():
  return datasets.bundled("digits", "train")


def _reference_predictions(model, space, variables, arch, source, calib_idx, idx, batch):
  """BN recalibration one batch at a time (BNCalibrator), then a plain forward pass."""
  res = arch.resolution
  prep = lambda b: augment.normalize(augment.to_float(b["image"]), MEAN, STD)  # noqa: E731
  calib = [prep(b) for b in input_pipeline.eval_batches(
      input_pipeline.Records(source, calib_idx), res, batch)]
  arrays = A.to_arrays(space, arch)
  calibrated = BNCalibrator(model)(variables, arrays, calib, res)
  preds = []
  for b in input_pipeline.eval_batches(input_pipeline.Records(source, idx), res, batch):
    logits = jit_apply(model)(calibrated, prep(b), arrays, train=False, resolution=res)
    preds.append(np.asarray(logits.argmax(-1))[b["mask"] > 0])
  return calibrated, np.concatenate(preds)


@pytest.mark.heavy(62)
def test_search_compiles_once_per_resolution_and_matches_a_reference(tiny_model, digits,
                                                                     tmp_path):
  space, model, variables = tiny_model
  calib_idx, val_idx = np.arange(0, 16), np.arange(100, 140)  # 40: a padded last batch
  evaluator = SubnetEvaluator(model, variables, MEAN, STD, (digits, calib_idx),
                              (digits, val_idx), batch_size=16)
  g = genome.Genome(space, (32, 40))
  cost = _mflops(space)
  sampler = genome.Sampler(g, cost, cost(sampling.max_arch(space)), np.random.default_rng(0))
  cfg = evolution.EvolutionConfig(population=6, generations=2, parents=3, num_mutations=3,
                                  num_crossovers=3, mutate_prob=0.3)
  with count_compiles() as compiles:
    result = evolution.evolve(sampler, evaluator.top1, cfg)
  resolutions = {a.resolution for a, _ in result.history}
  assert resolutions == {32, 40}
  assert len(result.history) > 2 * len(resolutions)
  assert compiles[0] == len(resolutions) == evaluator.compiled_programs()
  np.testing.assert_array_equal(evaluator.labels, digits.labels[val_idx])

  # The fused recalibrate-and-predict program agrees with the step-by-step reference,
  # and an exported static model predicts the same.
  arch = result.history[0][0]
  calibrated, want = _reference_predictions(model, space, variables, arch, digits, calib_idx,
                                            val_idx, 16)
  agree = np.mean(evaluator.predictions(arch) == want)
  assert agree >= 39 / 40  # float reassociation may flip one near-tie
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               evaluator.calibrated_variables(arch)["batch_stats"], calibrated["batch_stats"])
  out = str(tmp_path / "member")
  export.save(out, space, arch, evaluator.calibrated_variables(arch), 7, MEAN, STD,
              {"top1": 0.5})
  static = export.load(out)
  assert static.arch == arch and static.info == {"top1": 0.5} and export.is_static(out)
  prep = lambda b: augment.normalize(augment.to_float(b["image"]), MEAN, STD)  # noqa: E731
  got = np.concatenate([
      np.asarray(jax.jit(static.model.apply)(static.variables, prep(b)).argmax(-1))[b["mask"] > 0]
      for b in input_pipeline.eval_batches(input_pipeline.Records(digits, val_idx),
                                           arch.resolution, 16)])
  np.testing.assert_array_equal(got, evaluator.predictions(arch))

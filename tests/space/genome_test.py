"""Genes, constrained architecture search (REG-NAS CAS) and budget repair."""

import dataclasses

import jax
import numpy as np
import pytest

from tofa_jax.model import static_net, supernet
from tofa_jax.space import arch as A
from tofa_jax.space import flops, genome, sampling
from tofa_jax.space.search_space import get_space

SPACES = ("tiny", "tiny_ofa", "tofa", "ofa_mbv3")


def _mflops(space):
  return lambda a: flops.count(space, a).mflops


@pytest.mark.parametrize("name", SPACES)
def test_encode_decode_round_trip(name):
  space = get_space(name)
  g = genome.Genome(space)
  rng = np.random.default_rng(0)
  for _ in range(50):
    arch = sampling.random_arch(space, rng)
    assert g.decode(g.encode(arch)) == arch
  assert g.decode([0] * len(g)) == sampling.min_arch(space)
  assert g.decode([len(x.choices) - 1 for x in g.genes]) == sampling.max_arch(space)


@pytest.mark.parametrize("name", SPACES)
def test_cas_sampling_mutation_and_crossover_stay_in_the_constrained_set(name):
  """Property: every subnet the sampler produces fits the budget and contains the
  reference, for random references and budgets."""
  space = get_space(name)
  g = genome.Genome(space)
  cost = _mflops(space)
  lo, hi = cost(sampling.min_arch(space)), cost(sampling.max_arch(space))
  rng = np.random.default_rng(1)
  checked = 0
  for trial in range(12):
    reference = sampling.random_arch(space, rng)
    budget = cost(reference) + rng.random() * (hi - cost(reference))
    sampler = genome.Sampler(g, cost, budget, np.random.default_rng(trial), reference)
    pool = [sampler.random() for _ in range(6)]
    for _ in range(12):
      a, b = pool[int(rng.integers(len(pool)))], pool[int(rng.integers(len(pool)))]
      pool += [sampler.mutate(a, 0.3), sampler.crossover(a, b)]
    for arch in pool:
      A.validate(space, arch)
      assert cost(arch) <= budget + 1e-9
      assert genome.contains(space, arch, reference)
      assert sampler.in_set(arch)
      checked += 1
    # Unconstrained sampling under a budget reaches subnets outside the CAS set.
    free = genome.Sampler(g, cost, hi, np.random.default_rng(trial))
    assert not all(genome.contains(space, free.random(), reference) for _ in range(20)) \
        or reference == sampling.min_arch(space)
  assert checked == 12 * 30
  assert lo <= hi


# Fine-grained costs: in `tiny`, a CAS reference can leave no subnet within 10% of a budget.
@pytest.mark.parametrize("name", ("tofa", "ofa_mbv3"))
def test_floor_share_keeps_every_subnet_between_the_floor_and_the_budget(name):
  """`palette.search_floor`: random, mutated and crossed-over subnets all cost within
  [share * budget, budget], with and without a CAS reference; share 0 draws exactly what
  the sampler drew before the floor existed (the same random stream)."""
  space = get_space(name)
  g, cost = genome.Genome(space), _mflops(space)
  lo, hi = cost(sampling.min_arch(space)), cost(sampling.max_arch(space))
  rng = np.random.default_rng(2)
  for trial in range(8):
    reference = sampling.random_arch(space, rng) if trial % 2 else None
    base = lo if reference is None else cost(reference)
    budget = base + (0.2 + 0.8 * rng.random()) * (hi - base)
    sampler = genome.Sampler(g, cost, budget, np.random.default_rng(trial), reference, 0.9)
    pool = [sampler.random() for _ in range(6)]
    for _ in range(8):
      a, b = pool[int(rng.integers(len(pool)))], pool[int(rng.integers(len(pool)))]
      pool += [sampler.mutate(a, 0.3), sampler.crossover(a, b)]
    for arch in pool:
      assert 0.9 * budget <= cost(arch) <= budget + 1e-9, (trial, cost(arch), budget)
      assert sampler.in_set(arch)
  # Share 0: the same draws as a sampler that has never heard of the floor.
  budget = (lo + hi) / 2
  plain = genome.Sampler(g, cost, budget, np.random.default_rng(5))
  zero = genome.Sampler(g, cost, budget, np.random.default_rng(5), None, 0.0)
  assert [plain.random() for _ in range(10)] == [zero.random() for _ in range(10)]
  # Without a floor, budget repair leaves subnets well below the budget.
  assert min(cost(plain.random()) for _ in range(40)) < 0.9 * budget
  with pytest.raises(ValueError, match="palette.search_floor=1"):
    genome.Sampler(g, cost, budget, np.random.default_rng(0), None, 1.0)


def test_budget_below_the_reference_is_infeasible():
  space = get_space("tiny")
  g, cost = genome.Genome(space), _mflops(space)
  ref = dataclasses.replace(sampling.max_arch(space), resolution=min(space.resolutions))
  with pytest.raises(genome.InfeasibleBudget, match="reference subnet"):
    genome.Sampler(g, cost, cost(ref) - 1e-3, np.random.default_rng(0), ref)
  with pytest.raises(genome.InfeasibleBudget, match="smallest subnet"):
    genome.Sampler(g, cost, 0.0, np.random.default_rng(0))


def _leaves(tree):
  return {jax.tree_util.keystr(p): np.asarray(x)
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _holds(big: np.ndarray, small: np.ndarray, name: str) -> bool:
  """small == the slice of big a smaller subnet takes (centre for depthwise kernels)."""
  if big.ndim != small.ndim or any(s > b for s, b in zip(small.shape, big.shape, strict=True)):
    return False
  index = []
  for axis, (s, b) in enumerate(zip(small.shape, big.shape, strict=True)):
    centre = name.endswith("['depthwise']['kernel']") and axis < 2
    start = (b - s) // 2 if centre else 0
    index.append(slice(start, start + s))
  return np.array_equal(big[tuple(index)], small)


def test_contains_means_every_weight_of_the_reference_is_in_the_target(tiny_model):
  """`contains` against the weights themselves: extract both static subnets and
  check that each reference tensor is the matching slice of the target's."""
  space, _, variables = tiny_model
  rng = np.random.default_rng(3)
  seen = {True: 0, False: 0}
  for _ in range(40):
    ref, tgt = sampling.random_arch(space, rng), sampling.random_arch(space, rng)
    if rng.random() < 0.5:  # make containment common
      tgt = genome.Sampler(genome.Genome(space), _mflops(space), 1e9, rng, ref).random()
    tgt = dataclasses.replace(tgt, resolution=ref.resolution)
    _, v_ref = static_net.extract(space, ref, variables, 7)
    _, v_tgt = static_net.extract(space, tgt, variables, 7)
    big = _leaves(v_tgt["params"])
    held = all(name in big and _holds(big[name], x, name)
               for name, x in _leaves(v_ref["params"]).items()
               if "classifier" not in name)  # the classifier always holds the head's slice
    assert genome.contains(space, tgt, ref) == held
    seen[held] += 1
  assert seen[True] >= 5 and seen[False] >= 5


def test_supernet_is_unchanged_by_genome_use():
  # The genome is pure Python over the space: building one does not touch a model.
  space = get_space("tiny")
  model = supernet.build(space, num_classes=3)
  assert genome.Genome(space).space is model.space

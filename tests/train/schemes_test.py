"""The subnet schedules of `train.sampling` and `train.mode`: which archs at which steps,
phase and epoch boundaries, the programs they need. Host-only: nothing compiles."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tofa_jax.search import population
from tofa_jax.space import flops, genome, sampling
from tofa_jax.space.search_space import get_space
from tofa_jax.train import schemes
from tofa_jax.train import step as train_step

SPACE = get_space("tiny")  # resolutions (32, 40); kernels (3, 5); depths up to 3
MIN, MAX = sampling.min_arch(SPACE), sampling.max_arch(SPACE)


def _run(sched: schemes.Schedule, seed: int = 0) -> list[list]:
  return [sched.archs(SPACE, seed, s) for s in range(sched.steps)]


def _dims(arch) -> dict:
  return {"kernel": arch.kernel, "depth": arch.depth, "expand": arch.expand,
          "width": arch.width}


def _at_max(arch, dims) -> bool:
  """Whether `arch` holds every dimension in `dims` at its largest choice."""
  top = lambda values, choices: all(v == max(choices) for v in values)  # noqa: E731
  checks = {
      "depth": arch.depth == MAX.depth, "width": arch.width == MAX.width,
      "kernel": all(top(k, st.kernels) for k, st in zip(arch.kernel, SPACE.stages, strict=True)),
      "expand": all(top(e, st.expansions)
                    for e, st in zip(arch.expand, SPACE.stages, strict=True))}
  return all(checks[d] for d in dims)


def test_progressive_shrinking_phases_and_what_each_varies():
  sched = schemes.Schedule("progressive_shrinking", steps=40, ps_phases=(0.1, 0.3, 0.3, 0.3))
  assert sched.ps_bounds() == (4, 16, 28, 40)
  run = _run(sched)
  # Full network for steps 0-3, then 1, 2 and 4 subnets per step from steps 4, 16, 28.
  assert [len(a) for a in run] == [1] * 16 + [2] * 12 + [4] * 12
  assert all(archs == [MAX] for archs in run[:4])
  kernel, depth, width = run[4:16], run[16:28], run[28:]
  # A step's subnets share one resolution; across steps both resolutions are drawn.
  for phase in (kernel, depth, width):
    assert all(len({a.resolution for a in archs}) == 1 for archs in phase)
    assert {archs[0].resolution for archs in phase} == {32, 40}
  assert all(_at_max(a, ("depth", "expand", "width")) for archs in kernel for a in archs)
  assert len({a.kernel for archs in kernel for a in archs}) > 1
  assert all(_at_max(a, ("expand", "width")) for archs in depth for a in archs)
  assert len({a.depth for archs in depth for a in archs}) > 1
  assert len({a.kernel for archs in depth for a in archs}) > 1
  drawn = [a for archs in width for a in archs]
  for dim in ("kernel", "depth", "expand", "width"):
    assert len({_dims(a)[dim] for a in drawn}) > 1, dim
  assert run == _run(sched)  # pure in (seed, step)
  assert run[4:] != _run(sched, seed=1)[4:]
  # Every step's (resolution, count) is one of the programs the schedule declares.
  keys = {(schemes.step_resolution(a), len(a)) for a in run}
  assert keys == sched.programs(SPACE) == {(40, 1), (32, 1), (32, 2), (40, 2), (32, 4), (40, 4)}


def test_progressive_shrinking_default_phases_are_quarters():
  sched = schemes.Schedule("progressive_shrinking", steps=10_000)
  assert sched.ps_bounds() == (2500, 5000, 7500, 10_000)
  assert [sched.ps_phase(s) for s in (0, 2499, 2500, 4999, 5000, 7499, 7500, 9999)] == [
      0, 0, 1, 1, 2, 2, 3, 3]
  assert [len(sched.archs(SPACE, 0, s)) for s in (0, 2500, 5000, 7500)] == [1, 1, 2, 4]


def test_single_subnet_schemes():
  for scheme, want in (("single_min", MIN), ("single_max", MAX),
                       ("single_mid", sampling.mid_arch(SPACE))):
    sched = schemes.Schedule(scheme, steps=5)
    assert _run(sched) == [[want]] * 5
    assert sched.programs(SPACE) == {(want.resolution, 1)}
  mid = sampling.mid_arch(SPACE)  # two choices: the lower middle
  assert (mid.resolution, mid.depth, mid.kernel[1], mid.expand[1], mid.width) == (
      32, (1, 2, 1), (3, 3), (2.0, 2.0), (8, 8, 16, 24, 48))
  # RSS 6.3.2's middle in the OFA space: kernel 5, expansion 4, depth 3 in every elastic
  # stage (the fixed first stage keeps its one choice).
  ofa = sampling.mid_arch(get_space("ofa_mbv3"))
  assert ofa.depth == (1, 3, 3, 3, 3, 3) and ofa.resolution == 160
  assert ofa.kernel[1:] == ((5, 5, 5),) * 5 and ofa.expand[1:] == ((4.0, 4.0, 4.0),) * 5


def test_single_median_trains_the_median_cost_subnet():
  """`single_median`: the subnet nearest the middle of the MFLOPs range among the fixed
  sample, the median of RSS's evenly spread population; `single_mid` is not (lite0)."""
  space = dataclasses.replace(get_space("lite0"), resolutions=(32, 48))  # the study's
  median = sampling.median_arch(space)
  sched = schemes.Schedule("single_median", steps=3)
  assert [sched.archs(space, 0, s) for s in range(3)] == [[median]] * 3
  assert sched.programs(space) == {(median.resolution, 1)}
  cost = lambda a: flops.count(space, a).mflops  # noqa: E731
  lo, hi = cost(sampling.min_arch(space)), cost(sampling.max_arch(space))
  # Exact: the nearest to the midpoint of the same seeded draws, recomputed here.
  rng = sampling.rng_for(0, 0, sampling._MEDIAN_SALT)
  draws = [sampling.random_arch(space, rng) for _ in range(sampling.MEDIAN_SAMPLE)]
  gaps = np.abs(np.array([cost(a) for a in draws]) - (lo + hi) / 2)
  assert draws[int(np.argmin(gaps))] == median
  assert gaps.min() < 0.001 * (hi - lo)  # 12.146 of 2.170-22.137 MFLOPs
  # The same subnet whatever the classifier's classes (the study's 10, flops' 1000).
  assert sampling.median_arch(space, 10) == median
  # The median of an evenly spread population (RSS's: 3 equal bins, 9 subnets each): the
  # middle bin holds it, with the bottom bin's 9 below it and the top bin's 9 above.
  g = genome.Genome(space)
  bins = population.sample_bins(g, cost, 3, 9, np.random.default_rng(0))
  costs = sorted(cost(a) for b in bins for a in b.archs)
  assert bins[1].low <= cost(median) < bins[1].high
  assert len(costs) == 27 and costs[8] < cost(median) < costs[18]
  # The middle choice of every dimension sits in the bottom bin.
  assert cost(sampling.mid_arch(space)) < bins[0].high


def test_two_subnet_schemes_switch_at_epoch_boundaries():
  # 10 steps of 3-step epochs (0-2, 3-5, 6-8, 9): the middle boundary is step 6.
  def names(scheme):
    run = _run(schemes.Schedule(scheme, steps=10, epoch_steps=3))
    return "".join("n" if archs == [MIN] else "x" if archs == [MAX] else "?" for archs in run)

  assert names("min_then_max") == "nnnnnnxxxx"
  assert names("max_then_min") == "xxxxxxnnnn"
  assert names("alternating") == "nnnxxxnnnx"
  # Epochs of 2 steps, 12 steps: 6 epochs, 3 each.
  run = _run(schemes.Schedule("min_then_max", steps=12, epoch_steps=2))
  assert run == [[MIN]] * 6 + [[MAX]] * 6
  assert schemes.Schedule("alternating").programs(SPACE) == {(32, 1), (40, 1)}
  with pytest.raises(ValueError, match=r"^train.sampling='alternating' switches subnets at "
                                       r"epoch boundaries, but train.steps=5 is under 2 epochs "
                                       r"of 3 steps; raise train.steps to >= 6$"):
    schemes.Schedule("alternating", steps=5, epoch_steps=3).check_epochs()
  schemes.Schedule("alternating", steps=6, epoch_steps=3).check_epochs()


def test_rss_schemes_and_sandwich_are_unchanged_by_the_schedule():
  epoch = _run(schemes.Schedule("rss_epoch", steps=9, epoch_steps=3))
  assert [len(set(map(tuple, epoch[i:i + 3]))) for i in (0, 3, 6)] == [1, 1, 1]
  assert epoch[0] == [sampling.sample_arch(SPACE, 0, 0, salt=202)]
  assert epoch[3] == [sampling.sample_arch(SPACE, 0, 1, salt=202)]
  assert _run(schemes.Schedule("rss_batch", steps=3))[2] == [
      sampling.sample_arch(SPACE, 0, 2, salt=101)]
  sandwich = schemes.Schedule(steps=3)
  assert sandwich.teacher and sandwich.programs(SPACE) == {(32, 3), (40, 3)}
  assert all(archs[0] == MIN and len(archs) == 3 for archs in _run(sandwich))
  cfg = train_step.StepConfig()
  assert train_step.step_archs(SPACE, cfg, 0, 2, 0) == sandwich.archs(SPACE, 0, 2)


def test_single_mode_trains_the_fixed_arch(tmp_path):
  arch = sampling.sample_arch(SPACE, 5, 0)
  path = tmp_path / "arch.json"
  path.write_text(arch.to_json())
  assert schemes.fixed_arch(SPACE, str(path)) == arch
  assert schemes.fixed_arch(SPACE, "min") == MIN
  sched = schemes.Schedule("alternating", steps=4, fixed=arch)  # train.sampling unused
  assert not sched.teacher
  assert _run(sched) == [[arch]] * 4
  assert sched.programs(SPACE) == {(arch.resolution, 1)}
  sched.check_epochs()  # not switching: no epoch count needed
  with pytest.raises(ValueError, match=r"^train.arch='big' is neither a subnet name nor a "
                                       r"file; allowed: 'max', 'min', 'random:SEED' or an arch "
                                       r"JSON file$"):
    schemes.fixed_arch(SPACE, "big")
  path.write_text(sampling.min_arch(get_space("tiny_ofa")).to_json())
  with pytest.raises(ValueError, match=r"^train.arch='.*arch.json': not an arch of space "
                                       r"'tiny' \("):
    schemes.fixed_arch(SPACE, str(path))


@pytest.mark.parametrize("kw,message", [
    ({"ps_phases": (0.5, 0.5, 0.5, 0.5)},
     r"^train.ps_phases=\(0.5, 0.5, 0.5, 0.5\) does not split the run; allowed: 4 fractions "
     r"of train.steps \(full, kernel, depth, width\), each >= 0, summing to 1$"),
    ({"ps_subnets": (2, 1, 2, 4)},
     r"^train.ps_subnets=\(2, 1, 2, 4\) is not allowed; allowed: 4 counts of subnets per step "
     r"\(full, kernel, depth, width\), each >= 1, the full phase's 1 \(it trains the max "
     r"network\)$"),
    ({"scheme": "zigzag"}, r"^train.sampling='zigzag' is unknown; choose one of \['sandwich',"),
])
def test_schedule_errors_name_the_key(kw, message):
  with pytest.raises(ValueError, match=message):
    schemes.Schedule(**kw)

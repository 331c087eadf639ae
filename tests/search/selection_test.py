"""TOFA Algorithm 2 on a hand-made Omega, and palette budgets."""

import numpy as np
import pytest

from tofa_jax.search import selection
from tofa_jax.space import arch as A
from tofa_jax.space import sampling
from tofa_jax.space.search_space import get_space

SPACE = get_space("tiny")


def _arch(depth3: int, width_head: int = 48, stem: int = 8) -> A.Arch:
  a = sampling.min_arch(SPACE)
  return A.Arch(a.resolution, (stem,) + a.width[1:-1] + (width_head,), a.depth[:2] + (depth3,),
                a.kernel[:2] + ((3,) * depth3,), a.expand[:2] + ((2.0,) * depth3,))


# Hand-made Omega. cost is the metric p; (last, score) as SubnetRecord keeps them.
#   name  cost  last  score
#   a      10     9     9      sampled once, late
#   b      20     7    20      sampled at 3, 5, 5... (sum 20), last at 7
#   c      30     9    12      sampled at 3 and 9: ties with a on `last`
#   d      40     2     2
#   e       5     4    30      cheapest, high score
ARCHS = {"a": _arch(1, stem=16), "b": _arch(2), "c": _arch(1, 64), "d": _arch(2, 64),
         "e": sampling.min_arch(SPACE)}
COST = {"a": 10.0, "b": 20.0, "c": 30.0, "d": 40.0, "e": 5.0}
ENTRY = {"a": (9, 9), "b": (7, 20), "c": (9, 12), "d": (2, 2), "e": (4, 30)}
OMEGA = [(ARCHS[n], {"last": ENTRY[n][0], "score": ENTRY[n][1]}) for n in "abcde"]
NAME = {v: k for k, v in ARCHS.items()}
BUDGETS = [4, 5, 12, 25, 35, 100]


def _metric(arch):
  return COST[NAME[arch]]


def _names(picks):
  return [NAME[p] if p is not None else None for p in picks]


def test_last_iteration_variant():
  # t=4: nothing fits. t=5: only e. t=12: a (last 9) over e (4). t=25: a (9) over b (7).
  # t=35, 100: a and c tie at last=9; the costlier c uses more of the budget.
  got = selection.select(OMEGA, _metric, BUDGETS, "last")
  assert _names(got) == [None, "e", "a", "a", "c", "c"]


def test_score_variant():
  # score: e 30 > b 20 > c 12 > a 9 > d 2; e fits every budget from 5 up.
  got = selection.select(OMEGA, _metric, BUDGETS, "score")
  assert _names(got) == [None, "e", "e", "e", "e", "e"]
  without_e = [x for x in OMEGA if NAME[x[0]] != "e"]
  got = selection.select(without_e, _metric, BUDGETS, "score")
  assert _names(got) == [None, None, "a", "b", "b", "b"]


def test_fixed_subnets_rank_below_every_sampled_one():
  # e is the sandwich's min (sampled every step): picked only where nothing else fits.
  got = selection.select(OMEGA, _metric, BUDGETS, "score", fixed=[ARCHS["e"]])
  assert _names(got) == [None, "e", "a", "b", "b", "b"]


def test_every_pick_fits_and_is_lazy_in_the_metric():
  calls = []

  def metric(arch):
    calls.append(NAME[arch])
    return _metric(arch)

  got = selection.select(OMEGA, metric, [100.0], "last")
  assert _names(got) == ["c"]
  assert sorted(calls) == ["a", "c"]  # only the top index level was measured


def test_unknown_index_is_named():
  with pytest.raises(ValueError, match=r"palette.index='first'.*\['last', 'score'\]"):
    selection.select(OMEGA, _metric, [1.0], "first")


def test_budgets():
  assert selection.budgets((), 5, 100.0, 500.0) == [100.0, 200.0, 300.0, 400.0, 500.0]
  assert selection.budgets((600, 300), 5, 100.0, 500.0) == [300.0, 600.0]
  assert selection.budgets((), 1, 100.0, 500.0) == [500.0]
  with pytest.raises(ValueError, match="palette.budgets"):
    selection.budgets((50,), 5, 100.0, 500.0)
  with pytest.raises(ValueError, match="palette.num_budgets"):
    selection.budgets((), 0, 100.0, 500.0)
  np.testing.assert_allclose(selection.budgets((), 3, 1.0, 2.0), [1.0, 1.5, 2.0])
  # The space's MFLOPs window clips the range where the two overlap (tofa: 103-2391
  # MFLOPs over 192-320 px, window 200-2500), and is ignored where they do not.
  assert selection.budgets((), 3, 103.0, 2391.0, (200.0, 2500.0)) == [200.0, 1295.5, 2391.0]
  assert selection.budgets((), 2, 10.0, 50.0, (200.0, 2500.0)) == [10.0, 50.0]

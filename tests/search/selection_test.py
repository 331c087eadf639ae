"""TOFA Algorithm 2 on hand-made Omegas (both rules, both indices), duplicates, and
palette budgets. Pure Python: no training, no compile."""

import dataclasses

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
  return [NAME[p.arch] if p.arch is not None else None for p in picks]


def test_last_iteration_variant():
  # t=4: nothing fits. t=5: only e. t=12: a (last 9) over e (4). t=25: a (9) over b (7).
  # t=35, 100: a and c tie at last=9; the costlier c uses more of the budget.
  got = selection.select(OMEGA, _metric, BUDGETS, "last", rule="literal")
  assert _names(got) == [None, "e", "a", "a", "c", "c"]


def test_score_variant():
  # score: e 30 > b 20 > c 12 > a 9 > d 2; e fits every budget from 5 up.
  got = selection.select(OMEGA, _metric, BUDGETS, "score", rule="literal")
  assert _names(got) == [None, "e", "e", "e", "e", "e"]
  without_e = [x for x in OMEGA if NAME[x[0]] != "e"]
  got = selection.select(without_e, _metric, BUDGETS, "score", rule="literal")
  assert _names(got) == [None, None, "a", "b", "b", "b"]


def test_fixed_subnets_rank_below_every_sampled_one():
  # e is the sandwich's min (sampled every step): picked only where nothing else fits.
  got = selection.select(OMEGA, _metric, BUDGETS, "score", fixed=[ARCHS["e"]], rule="literal")
  assert _names(got) == [None, "e", "a", "b", "b", "b"]


def test_every_pick_fits_and_is_lazy_in_the_metric():
  calls = []

  def metric(arch):
    calls.append(NAME[arch])
    return _metric(arch)

  got = selection.select(OMEGA, metric, [100.0], "last", rule="literal")
  assert _names(got) == ["c"]
  assert sorted(calls) == ["a", "c"]  # only the top index level was measured


def test_unknown_index_is_named():
  with pytest.raises(ValueError, match=r"palette.index='first'.*\['last', 'score'\]"):
    selection.select(OMEGA, _metric, [1.0], "first")


# A second hand-made Omega, to compare the rules: m is the sandwich's min (sampled at all 50
# iterations); the rest are random draws, b and c both at the last iteration, e twice.
#   name  cost  last  score
WIDE = [("m", 5, 50, 1275), ("a", 12, 48, 48), ("b", 18, 50, 50), ("c", 25, 50, 50),
        ("d", 33, 44, 44), ("e", 41, 30, 55), ("f", 47, 49, 49), ("g", 60, 12, 12),
        ("h", 75, 40, 40), ("i", 90, 35, 35), ("j", 22, 46, 46)]
MIN = sampling.min_arch(SPACE)
W_ARCH = {n: MIN if n == "m" else dataclasses.replace(MIN, resolution=100 + k)
          for k, (n, *_) in enumerate(WIDE)}
W_NAME = {a: n for n, a in W_ARCH.items()}
W_COST = {W_ARCH[n]: float(c) for n, c, _, _ in WIDE}
W_OMEGA = [(W_ARCH[n], {"last": last, "score": score}) for n, _, last, score in WIDE]
# (-inf, 4] is empty and nothing fits; (100, 110] is empty: a fallback.
W_BUDGETS = [4, 10, 20, 30, 45, 70, 100, 110]


def _wide(budgets=W_BUDGETS, index="last", fixed=(MIN,), rule="bands"):
  got = selection.select(W_OMEGA, W_COST.__getitem__, budgets, index, fixed, rule)
  return [W_NAME[p.arch] if p.arch is not None else None for p in got], got


def test_literal_rule_keeps_todays_picks():
  # Computed with select() as it was before palette.rule existed (Algorithm 2 as printed).
  assert _wide(rule="literal")[0] == [None, "m", "b", "c", "c", "c", "c", "c"]
  assert _wide(fixed=(), rule="literal")[0] == [None, "m", "b", "c", "c", "c", "c", "c"]
  assert _wide(index="score", rule="literal")[0] == [None, "m", "b", "c", "e", "e", "e", "e"]
  assert _wide(index="score", fixed=(), rule="literal")[0] == [None] + ["m"] * 7
  assert _wide([45, 10, 30, 30], rule="literal")[0] == ["c", "m", "c", "c"]
  assert not any(p.fallback for p in _wide(rule="literal")[1])


def test_bands_pick_the_highest_index_within_each_size_range():
  names, got = _wide()
  # (4,10]: m alone. (10,20]: b (50) over a (48). (20,30]: c (50) over j (46).
  # (30,45]: d (44) over e (30). (45,70]: f (49) over g. (70,100]: h (40) over i (35).
  # (100,110] is empty: the literal pick c, marked.
  assert names == [None, "m", "b", "c", "d", "f", "h", "c"]
  assert [p.fallback for p in got] == [False] * 7 + [True]
  # 'score' differs only where a subnet was drawn twice: e (25 + 30) over d in (30,45],
  # and so does the fallback, the literal 'score' pick.
  assert _wide(index="score")[0] == [None, "m", "b", "c", "e", "f", "h", "e"]
  assert selection.duplicates([p.arch for p in got]) == [None] * 7 + [3]


def test_bands_members_increase_and_sit_in_their_range():
  for index in selection.INDICES:
    got = _wide(index=index)[1]
    lows = [-np.inf, *W_BUDGETS[:-1]]
    kept = [(W_COST[p.arch], lo, t) for p, lo, t in zip(got, lows, W_BUDGETS, strict=True)
            if p.arch is not None and not p.fallback]
    assert len(kept) == 6
    assert all(lo < c <= t for c, lo, t in kept)
    costs = [c for c, _, _ in kept]
    assert costs == sorted(set(costs))  # strictly increasing
    for p, t in zip(got, W_BUDGETS, strict=True):  # a fallback still fits its budget
      assert p.arch is None or W_COST[p.arch] <= t


def test_bands_take_unsorted_and_equal_budgets():
  # Ranges come from the sorted budgets, picks in the order given; the second of two
  # equal budgets has an empty range (30, 30]: the literal pick, marked.
  names, got = _wide([45, 10, 30, 30])
  assert names == ["d", "m", "c", "c"]
  assert [p.fallback for p in got] == [False, False, False, True]
  assert selection.duplicates([p.arch for p in got]) == [None, None, None, 2]


def test_the_min_subnet_is_a_band_pick_only_when_its_range_has_nothing_else():
  # (0, 15]: a (last 48) over m, the fixed min, which ranks below every draw.
  assert _wide([15, 30])[0] == ["a", "c"]


def test_duplicates_name_the_first_equal_member():
  a, b, c = (W_ARCH[n] for n in "abc")
  assert selection.duplicates([a, b, a, None, b, a, c]) == [None, None, 0, None, 1, 0, None]
  assert selection.duplicates([]) == []


def test_unknown_rule_is_named():
  with pytest.raises(ValueError, match=r"palette.rule='nearest'.*\['bands', 'literal'\]"):
    selection.select(OMEGA, _metric, [1.0], "last", rule="nearest")


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

"""The study's designs (issue 33) on hand-made inputs: budgets above the minnet's cost,
section 4.6's rows with duplicate picks counted, REG-NAS members at matched MFLOPs and
the top-1 paragon, the RSS arms' setting and their loss against chance."""

import importlib
import math

import numpy as np
import pytest

from tofa_jax.config import validate
from tofa_jax.cost import cost_model
from tofa_jax.reproduce import arms, budgets, context, regnas_tables, rss_tables, tofa_tables
from tofa_jax.space import sampling, search_space

BASE = importlib.import_module("configs.study").get_config()


def test_budgets_lie_evenly_above_the_minnets_cost_up_to_the_maxnets():
  space = search_space.resolve(BASE.model)
  cost = cost_model.CostModel(space, 10).metric_fn("mflops")  # mnist5k: 10 classes
  lo, hi = cost(sampling.min_arch(space)), cost(sampling.max_arch(space))
  got = budgets.above_min(BASE, 5)
  assert len(got) == 5 and got[-1] == pytest.approx(hi)
  np.testing.assert_allclose(got, [lo + i * (hi - lo) / 5 for i in range(1, 6)], rtol=1e-12)
  assert min(got) > lo * 1.5  # the lowest is a fifth of the range above the minnet
  config = arms.arm_config(BASE, arms.ARMS["held_out"], 0, budgets.palette_keys(BASE, 5))
  validate.palette(config)
  quick = context.quick(BASE)
  assert len(budgets.above_min(quick, int(quick.study.selection_budgets))) == 2


def _pick(top1, arch, dup=None, fallback=False, with_dup=True):
  out = {"top1": top1, "arch": arch, "fallback": fallback}
  return {**out, "duplicate_of": dup} if with_dup else out


def _palettes(a, b, c, with_dup=True):
  """One seed's two palettes: the rule within size ranges with the two searches, and
  the literal rule (archs are any JSON values; equal ones are the same subnet)."""
  p = lambda *args: _pick(*args, with_dup=with_dup)  # noqa: E731
  return {
      "selection": {"budgets": [6.0, 10.0], "comparison": {
          "rule": {"evaluated_on_validation": 0,
                   "picks": [p(0.7, a), p(0.8, b, None, True)]},
          "predictor": {"evaluated_on_validation": 1000, "picks": [p(0.75, b), p(0.85, c)]},
          "random": {"evaluated_on_validation": 20, "picks": [p(0.6, c), p(0.6, c, 0)]}}},
      "selection_literal": {"budgets": [6.0, 10.0], "comparison": {
          "rule": {"evaluated_on_validation": 0, "picks": [p(0.5, a), p(0.5, a, 0)]}}}}


def test_section_4_6_rows_count_duplicate_picks_and_band_fallbacks():
  a, b, c = {"w": 1}, {"w": 2}, {"w": 3}
  # Seed 1's palettes predate `duplicate_of`: the same counts from the archs.
  got = tofa_tables.selection_results([_palettes(a, b, c), _palettes(a, b, c, False)])
  assert got["bands"]["top1"] == [[0.7, 0.7], [0.8, 0.8]]  # per budget, per seed
  assert {r: (g["duplicates"], g["fallbacks"], g["picks"]) for r, g in got.items()} == {
      "bands": (0, 2, 4), "literal": (2, 0, 4), "predictor": (0, 0, 4), "random": (2, 0, 4)}
  assert got["predictor"]["evaluated"] == [1000, 1000]
  assert tofa_tables._per_seed_mean([[0.7, None], [0.8, 0.9]]) == [pytest.approx(0.75), None]


def _member(mflops, budget):
  return {"mflops": mflops, "budget": budget}


def test_regnas_members_at_matched_mflops_are_reported_exactly():
  reports = [{"models": [_member(8.0, 8.8), _member(14.0, 15.5), _member(20.0, 22.1)]},
             {"models": [_member(8.7, 8.8), _member(15.5, 15.5), _member(22.1, 22.1)]},
             {"models": [_member(7.9, 8.8), _member(13.8, 15.5)]}]  # 13.8 < 0.9 * 15.5
  spans, below = regnas_tables.matched(reports, 0.9)
  assert spans == ["7.9-8.7", "13.8-15.5", "20.0-22.1"]
  assert below == 2  # 7.9 < 7.92 and 13.8 < 13.95; 8.0 and 20.0 are within 90%
  evo = BASE.study.regnas_evolution
  assert regnas_tables.evaluations(evo) == 32 + 8 * (16 + 16)
  assert regnas_tables.evaluations(BASE.palette.evolution) == 112  # the searches before


def test_the_page_says_whether_r0_is_the_top1_paragon():
  names = {k: f"{k[0]}{' + CAS' if k[1] else ''}" for k in regnas_tables.VARIANTS}
  top1 = {k: [0.80, 0.82, 0.81] for k in regnas_tables.VARIANTS}
  top1[("R0", False)] = [0.85, 0.86, 0.85]
  assert regnas_tables.paragon(top1, names).startswith("R0 is the top-1 paragon: its mean "
                                                       "member top-1 (85.3%)")
  top1[("R2", True)] = [0.88, 0.89, 0.88]
  top1[("R1", False)] = [0.86, 0.86, 0.86]
  text = regnas_tables.paragon(top1, names)
  assert text.startswith("R0 is not the top-1 paragon here: R2 + CAS (88.3%), R1 (86.0%) "
                         "score above its 85.3%")
  assert "R2 + CAS > R0 in mean member top-1: held" in text


def test_the_regnas_palettes_search_at_matched_cost_above_the_minnet(tmp_path):
  study = context.Study(BASE, str(tmp_path), None, False)
  for reward, cas in regnas_tables.VARIANTS:
    extra = dict(regnas_tables._extra(study, reward, cas))
    assert extra["palette.search_floor"] == 0.9 and extra["palette.evolution.generations"] == 8
    assert extra["palette.budgets"] == budgets.above_min(BASE, 3)
    validate.palette(arms.arm_config(BASE, arms.ARMS["tofa"], 0, tuple(extra.items())))


@pytest.mark.parametrize("name", sorted(a for a in arms.ARMS if arms.ARMS[a].rss))
def test_rss_arms_train_from_random_weights_at_32_px_for_their_epochs(name):
  config = arms.arm_config(BASE, arms.ARMS[name], 0)
  assert config.init.checkpoint == "random" and tuple(config.model.resolutions) == (32,)
  assert config.train.steps == 74 * 32  # 500 digits at 16 a step: 32 steps an epoch
  assert config.optim.lr == 0.0025 and BASE.optim.lr == 0.01  # RSS's 0.01 at batch 64
  quick = arms.arm_config(context.quick(BASE), arms.ARMS[name], 0)
  assert quick.train.steps == 4  # 2 epochs of 2 steps, as quick_steps before
  other = arms.arm_config(BASE, arms.ARMS["tofa"], 0)
  assert other.init.checkpoint == "lite0-wheel" and other.train.steps == BASE.train.steps
  assert other.optim.lr == BASE.optim.lr


def test_rss_loss_against_chance():
  text = rss_tables.loss_reading({"rss_epoch": [1.2, 1.4], "sandwich": [2.4, 2.5]}, 10)
  assert text.startswith(f"Labelled loss at the last step against chance (ln 10 = "
                         f"{math.log(10):.2f}): rss_epoch 1.30, sandwich 2.45; ")
  assert text.endswith("sandwich did not fall below chance: their populations never trained.")
  assert rss_tables.loss_reading({"a": [1.0]}, 10).endswith("every population trained.")

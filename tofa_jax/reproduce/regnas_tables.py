"""REG-NAS's comparisons on the TOFA-full supernet: negative flips between consecutive
palette members under the R0, R1 and R2 rewards, with and without the CAS constraint
(its sections 4.2-4.3), then fine-tuning the R2 + CAS members with CE against Focal
Distillation (its section 4.4).

Members are compared at matched MFLOPs: every search draws its subnets within
[`study.regnas_floor` * t, t] of its budget t (`palette.search_floor`), so member i of
every reward lies in the same cost band, as REG-NAS's 300-MFLOPs members do (279-298).
The budgets lie above the minnet's cost (`budgets.py`), so the search chooses every
member; each search runs `study.regnas_evolution`."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable

import numpy as np

from tofa_jax.reproduce import budgets as budgets_lib
from tofa_jax.reproduce.context import Study
from tofa_jax.reproduce.sections import Section
from tofa_jax.reproduce.stats import as_good_as, beats, summary
from tofa_jax.search import finetune as finetune_lib

# (reward, CAS): R2 + CAS runs last and exports its members, which `finetuning` trains.
VARIANTS = (("R0", False), ("R1", False), ("R2", False), ("R0", True), ("R1", True),
            ("R2", True))


def _name(reward: str, cas: bool) -> str:
  return f"regnas_{reward}{'_cas' if cas else ''}"


def _extra(study: Study, reward: str, cas: bool) -> tuple[tuple[str, object], ...]:
  s = study.base.study
  evolution = tuple((f"palette.evolution.{k}", v) for k, v in s.regnas_evolution.items())
  return (*budgets_lib.palette_keys(study.base, int(study.base.palette.num_budgets)),
          ("palette.search_floor", float(s.regnas_floor)), *evolution,
          ("palette.method", "regnas"), ("palette.compare", ()), ("palette.reward", reward),
          ("palette.cas", cas), ("palette.export", reward == "R2" and cas))


def _palette(study: Study, reward: str, cas: bool, seed: int) -> dict:
  return study.palette(_name(reward, cas), "tofa", seed, _extra(study, reward, cas))


def evaluations(evolution) -> int:
  """The most subnets one evolutionary search evaluates (`search/evolution.py`)."""
  return int(evolution.population) + int(evolution.generations) * (
      int(evolution.num_mutations) + int(evolution.num_crossovers))


def matched(reports: list[dict], floor: float) -> tuple[list[str], int]:
  """Per member position, the MFLOPs range of the members of `reports` (any rewards and
  seeds) as 'lo-hi'; and how many members lie below `floor` * their budget (searches
  that found no subnet in the band)."""
  n = max(len(r["models"]) for r in reports)
  spans = []
  for i in range(n):
    values = [r["models"][i]["mflops"] for r in reports if len(r["models"]) > i]
    spans.append(f"{min(values):.1f}-{max(values):.1f}")
  below = sum(m["mflops"] < floor * m["budget"] * (1 - 1e-9) for r in reports
              for m in r["models"])
  return spans, below


def paragon(top1: dict[tuple[str, bool], list], names: dict[tuple[str, bool], str]) -> str:
  """Whether R0 (no CAS), the search for top-1 alone, has the highest mean member top-1,
  as REG-NAS's 'paragon Top-1'; and if not, which rewards beat it, with the paired
  verdict against the best of them."""
  mean = {k: summary(v).mean for k, v in top1.items()}
  r0 = ("R0", False)
  above = sorted((k for k in mean if k != r0 and mean[k] > mean[r0]), key=lambda k: -mean[k])
  if not above:
    return (f"R0 is the top-1 paragon: its mean member top-1 ({100 * mean[r0]:.1f}%) is the "
            "highest of the six searches.")
  best = above[0]
  others = ", ".join(f"{names[k]} ({100 * mean[k]:.1f}%)" for k in above)
  return (f"R0 is not the top-1 paragon here: {others} score above its {100 * mean[r0]:.1f}%, "
          "so the searches did not reach the top-1 optimum of each band. "
          + beats(top1[best], top1[r0], f"{names[best]} > R0 in mean member top-1"))


def _consecutive_nfr(report: dict) -> float | None:
  values = [m["nfr_from_smaller"] for m in report["models"] if m["nfr_from_smaller"] is not None]
  return float(np.mean(values)) if values else None


def rewards(study: Study) -> Section:
  reports = {k: [_palette(study, *k, s) for s in study.seeds] for k in VARIANTS}
  # One value per seed, in seed order (the paired verdicts need them aligned).
  got = {k: ([_consecutive_nfr(r) for r in rs],
             [float(np.mean([m["top1"] for m in r["models"]])) for r in rs])
         for k, rs in reports.items()}
  floor = float(study.base.study.regnas_floor)
  rows = []
  for (reward, cas), (nfr, top1) in got.items():
    spans, _ = matched(reports[(reward, cas)], floor)
    rows.append([reward, "yes" if cas else "no", summary(nfr).pct(), summary(top1).pct(),
                 " / ".join(spans)])
  spans, below = matched([r for rs in reports.values() for r in rs], floor)
  members = sum(len(r["models"]) for rs in reports.values() for r in rs)
  nfr = {k: v[0] for k, v in got.items()}
  top1 = {k: v[1] for k, v in got.items()}
  names = {(r, c): f"{r}{' + CAS' if c else ''}" for r, c in VARIANTS}
  reading = [
      beats(nfr[("R2", True)], nfr[("R0", False)],
            "REG-NAS (R2 + CAS) has a lower NFR than plain accuracy search (R0, no CAS)",
            higher_is_better=False),
      beats(nfr[("R0", True)], nfr[("R0", False)], "CAS alone lowers NFR (R0)",
            higher_is_better=False),
      beats(nfr[("R1", False)], nfr[("R0", False)],
            "the NFR reward alone lowers NFR (R1 vs R0, no CAS)", higher_is_better=False),
      as_good_as(top1[("R2", True)], top1[("R0", False)],
                 "REG-NAS's mean member top-1 as good as R0's (the paper: within a fraction "
                 "of a point)"),
      paragon(top1, names),
      f"Matched cost: the members of all six searches and every seed lie at {', '.join(spans)} "
      f"MFLOPs (member 0, 1, ...); {below} of {members} fell below {100 * floor:.0f}% of "
      "their budget."]
  evo = study.base.study.regnas_evolution
  budgets = reports[VARIANTS[0]][0]["budgets"]
  return Section(
      key="regnas_rewards", title="REG-NAS analog: negative flips between consecutive members",
      claim="Searching with the reward R2 = Top1 - NFR inside the CAS set (each member contains "
            "the previous one's weights) gives fewer negative flips between consecutive members "
            "than searching for accuracy alone (R0), at about the same top-1 and cost (REG-NAS "
            "Tables 1-3; weight-shared, MobileNet-V3 space of OFA: R0's member 2.51% NFR against "
            "R2 + CAS's 2.16%, at 298 and 294 MFLOPs).",
      header=["reward", "CAS", "NFR between consecutive members (%)", "mean member top-1 (%)",
              "member MFLOPs (over seeds)"],
      rows=rows, reading=reading,
      notes=f"One palette per (reward, CAS) and seed, searched on TOFA-full's supernet with "
            "validation data carved from its training data (`palette.val_fraction`); NFR and "
            f"top-1 on the test split. {len(budgets)} budgets evenly spaced above the minnet's "
            f"cost ({', '.join(f'{t:.1f}' for t in budgets)} MFLOPs), and every search draws "
            f"its subnets within {100 * floor:.0f}-100% of its budget "
            f"(`palette.search_floor={floor:g}`), so that the rewards' members are compared at "
            "matched MFLOPs. Each search: evolution with population "
            f"{int(evo.population)}, {int(evo.generations)} generations of "
            f"{int(evo.num_mutations)} mutations and {int(evo.num_crossovers)} crossovers, at "
            f"most {evaluations(evo)} validation evaluations (REG-NAS: 1,525 per search, "
            "population 100, 20 generations).")


def _finetune_once(palette_json: Callable[[], str], member: int, settings, out: str) -> dict:
  """The fine-tuning's report: read back when an earlier invocation finished it.
  `palette_json()` gives the palette file whose exported members it reads."""
  done = os.path.join(out, finetune_lib.REPORT_FILE)
  if os.path.isfile(done):
    with open(done) as f:
      return json.load(f)
  return finetune_lib.finetune(palette_json(), member, settings, out)


def finetuning(study: Study) -> Section:
  """Each R2 + CAS member but the first, fine-tuned against its predecessor."""
  steps = int(study.base.study.finetune_steps)
  results: dict[tuple[int, str], list[dict]] = {}
  for seed in study.seeds:
    _palette(study, "R2", True, seed)  # trained and exported first (cached after)
    report, members = finetune_lib.read_palette(study.runs.palette_path(
        f"{_name('R2', True)}_seed{seed}"))
    # The exported members, needed only by a fine-tuning not done yet (on another
    # machine, the palette runs again; the first such fine-tuning's time counts it).
    files = functools.cache(functools.partial(
        study.palette_files, _name("R2", True), "tofa", seed, _extra(study, "R2", True)))
    # Quick: the last member only (a pipeline check).
    for member in range(len(members) - 1 if study.is_quick else 1, len(members)):
      for loss in finetune_lib.LOSSES:
        name = f"seed{seed}_member{member}_{loss}"
        settings = finetune_lib.Settings(loss=loss, steps=steps, seed=seed)
        out = os.path.join(study.root, "finetune", name)
        r = study.runs.keep(
            f"finetune_{name}", functools.partial(_finetune_once, files, member, settings, out),
            {"settings": dataclasses.asdict(settings), "palette": report["config"]})
        results.setdefault((member, loss), []).append(r)
  rows, reading = [], []
  for member in sorted({m for m, _ in results}):
    before = results[(member, "ce")]
    rows.append([str(member), "none", summary([r["before"]["top1"] for r in before]).pct(),
                 summary([r["before"]["nfr"] for r in before]).pct()])
    for loss in finetune_lib.LOSSES:
      rs = results[(member, loss)]
      rows.append([str(member), loss.upper(), summary([r["after"]["top1"] for r in rs]).pct(),
                   summary([r["after"]["nfr"] for r in rs]).pct()])
    # Per seed, in seed order: `results` appends each loss's runs seed by seed.
    nfr = {loss: [r["after"]["nfr"] for r in results[(member, loss)]]
           for loss in finetune_lib.LOSSES}
    reading.append(beats(nfr["fd"], nfr["ce"],
                         f"member {member}: FD fine-tuning ends with a lower NFR than CE",
                         higher_is_better=False))
    reading.append(beats(nfr["ce"], [r["before"]["nfr"] for r in before],
                         f"member {member}: CE fine-tuning raises NFR"))
  return Section(
      key="regnas_finetune", title="REG-NAS section 4.4 analog: fine-tuning with CE against FD",
      claim="Fine-tuning a REG-NAS member with cross-entropy raises its NFR against the "
            "reference member; Focal Distillation (FD-KD) keeps it lower (REG-NAS section 4.4).",
      header=["member", "fine-tuning", "top-1 (%)", "NFR from the previous member (%)"],
      rows=rows, reading=reading,
      notes=f"The R2 + CAS members, each fine-tuned for {steps} steps on the labelled data "
            "(`python -m tofa_jax.finetune`, its defaults: FD alpha 1, beta 5, T 100), against "
            "the previous member.")

"""REG-NAS's comparisons on the TOFA-full supernet: negative flips between consecutive
palette members under the R0, R1 and R2 rewards, with and without the CAS constraint
(its sections 4.2-4.3), then fine-tuning the R2 + CAS members with CE against Focal
Distillation (its section 4.4)."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable

import numpy as np

from tofa_jax.reproduce.context import Study
from tofa_jax.reproduce.sections import Section
from tofa_jax.reproduce.stats import as_good_as, beats, summary
from tofa_jax.search import finetune as finetune_lib

# (reward, CAS): R2 + CAS runs last and exports its members, which `finetuning` trains.
VARIANTS = (("R0", False), ("R1", False), ("R2", False), ("R0", True), ("R1", True),
            ("R2", True))


def _name(reward: str, cas: bool) -> str:
  return f"regnas_{reward}{'_cas' if cas else ''}"


def _extra(reward: str, cas: bool) -> tuple[tuple[str, object], ...]:
  return (("palette.method", "regnas"), ("palette.compare", ()), ("palette.reward", reward),
          ("palette.cas", cas), ("palette.export", reward == "R2" and cas))


def _palette(study: Study, reward: str, cas: bool, seed: int) -> dict:
  return study.palette(_name(reward, cas), "tofa", seed, _extra(reward, cas))


def _consecutive_nfr(report: dict) -> float | None:
  values = [m["nfr_from_smaller"] for m in report["models"] if m["nfr_from_smaller"] is not None]
  return float(np.mean(values)) if values else None


def rewards(study: Study) -> Section:
  got = {}
  for reward, cas in VARIANTS:
    reports = [_palette(study, reward, cas, s) for s in study.seeds]
    # One value per seed, in seed order (the paired verdicts need them aligned).
    got[(reward, cas)] = ([_consecutive_nfr(r) for r in reports],
                          [float(np.mean([m["top1"] for m in r["models"]])) for r in reports])
  rows = [[reward, "yes" if cas else "no", summary(nfr).pct(), summary(top1).pct()]
          for (reward, cas), (nfr, top1) in got.items()]
  nfr = {k: v[0] for k, v in got.items()}
  top1 = {k: v[1] for k, v in got.items()}
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
                 "of a point)")]
  return Section(
      key="regnas_rewards", title="REG-NAS analog: negative flips between consecutive members",
      claim="Searching with the reward R2 = Top1 - NFR inside the CAS set (each member contains "
            "the previous one's weights) gives far fewer negative flips between consecutive "
            "members than searching for accuracy alone (R0), at about the same top-1 (REG-NAS "
            "Tables 1-3).",
      header=["reward", "CAS", "NFR between consecutive members (%)", "mean member top-1 (%)"],
      rows=rows, reading=reading,
      notes="One palette per (reward, CAS) and seed, three budgets, searched on TOFA-full's "
            "supernet with validation data carved from its training data "
            "(`palette.val_fraction`); NFR and top-1 on the test split.")


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
        study.palette_files, _name("R2", True), "tofa", seed, _extra("R2", True)))
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

"""TOFA's comparisons: Table 3 (baselines), Table 4 (loss variants), section 4.6 (the
zero-cost rule against searches) and, beyond the paper, palette members against the
same architectures trained alone."""

from __future__ import annotations

import json
import os

from tofa_jax.reproduce.arms import Arm
from tofa_jax.reproduce.context import Study
from tofa_jax.reproduce.sections import Section
from tofa_jax.reproduce.stats import as_good_as, beats, summary
from tofa_jax.search import palette_plots


def _top1(study: Study, arm: str, key: str) -> list:
  """One value per seed, in seed order (the paired verdicts need them aligned)."""
  return [study.train(arm, s)[key] for s in study.seeds]


def _mask_rate(study: Study, arm: str) -> str:
  """FixMatch's mask rate (the share of unlabelled images whose pseudo-label passed
  the threshold), averaged over each run's log lines, then over the seeds ('n/a' for
  an arm without FixMatch)."""
  return summary([study.runs.logged(arm, s, "train/mask_rate") for s in study.seeds]).pct()


def table3(study: Study) -> Section:
  names = {"baseline": "Baseline (one maxnet, labelled CE)", "fixmatch": "FixMatch (one maxnet)",
           "lab": "TOFA-lab (supernet, labelled data)", "tofa": "TOFA-full (supernet, all data)"}
  got = {arm: _top1(study, arm, "top1_max") for arm in names}
  return Section(
      key="table3", title="TOFA Table 3 analog: maxnet top-1 against single-model baselines",
      claim="TOFA-full beats FixMatch, which beats the Baseline; TOFA-lab beats the Baseline "
            "by 2-4 points (paper, Table 3 and section 4.3).",
      header=["method", "maxnet top-1 (%)", "FixMatch mask rate (%)"],
      rows=[[names[a], summary(got[a]).pct(), _mask_rate(study, a)] for a in names],
      reading=[beats(got["tofa"], got["fixmatch"], "TOFA-full > FixMatch"),
               beats(got["fixmatch"], got["baseline"], "FixMatch > Baseline"),
               beats(got["lab"], got["baseline"], "TOFA-lab > Baseline")],
      notes="All four start from the same ImageNet weights with the same optimiser, steps and "
            "data; Baseline and FixMatch train the maxnet alone (`train.mode='single'`).")


def table4(study: Study) -> Section:
  variants = {"lab": "L^lab", "fm": "L^lab + L^FM", "dist": "L^lab + L^dist",
              "tofa": "L^lab + L^FM + L^dist (TOFA)"}
  got = {(a, n): _top1(study, a, f"top1_{n}") for a in variants for n in ("max", "min")}
  reading = [beats(got[(a, "max")], got[("lab", "max")], f"maxnet: {a} > lab")
             for a in ("fm", "dist", "tofa")]
  reading += [beats(got[(a, "min")], got[("lab", "min")], f"minnet: {a} > lab")
              for a in ("fm", "dist", "tofa")]
  return Section(
      key="table4", title="TOFA Table 4 analog: loss variants, maxnet and minnet",
      claim="Every variant that uses the unlabelled data beats L^lab, and the full loss is the "
            "best for maxnet and minnet (paper, Table 4).",
      header=["variant", "loss", "maxnet top-1 (%)", "minnet top-1 (%)",
              "FixMatch mask rate (%)"],
      rows=[[a, variants[a], summary(got[(a, "max")]).pct(), summary(got[(a, "min")]).pct(),
             _mask_rate(study, a)] for a in variants],
      reading=reading)


METHODS = {"rule": "zero-cost rule (Algorithm 2)",
           "predictor": "evolution + accuracy predictor", "random": "random search"}


def selection(study: Study) -> Section:
  """Section 4.6: the three methods' test top-1 at three budgets, and their cost."""
  reports = [study.palette("selection", "held_out", s,
                           (("palette.method", "rule"),
                            ("palette.compare", ("predictor", "random")))) for s in study.seeds]
  budgets = reports[0]["budgets"]
  top1 = {m: [[] for _ in budgets] for m in METHODS}
  cost = {m: [] for m in METHODS}
  for rep in reports:
    for m in METHODS:
      run = rep["comparison"][m]
      cost[m].append(run["evaluated_on_validation"])
      for i, pick in enumerate(run["picks"]):
        top1[m][i].append(pick.get("top1") if pick.get("arch") else None)
  rows = []
  for m, name in METHODS.items():
    cells = [summary(v).pct() for v in top1[m]]
    rows.append([name, *cells, f"{sum(cost[m]) / len(cost[m]):.0f}"])
  reading = [as_good_as(top1["rule"][i], top1[m][i], f"At {t:.1f} MFLOPs, rule as good as {m}")
             for i, t in enumerate(budgets) for m in ("predictor", "random")]
  series = {m: [(t, summary(v).mean) for t, v in zip(budgets, top1[m], strict=True)
                if summary(v).values] for m in METHODS}
  plot = "selection.png"
  palette_plots.accuracy_vs(series, "budget (MFLOPs)",
                            "TOFA 4.6 analog: test top-1 at each budget",
                            os.path.join(study.plots, plot))
  return Section(
      key="selection", title="TOFA section 4.6 analog: the zero-cost rule against searches",
      claim="The fixed selection rule is as accurate as evolutionary search with an accuracy "
            "predictor (~1,000 subnet evaluations) and random search (~10 per budget), at no "
            "evaluation cost (paper, section 4.6, Figures 8-11).",
      header=["method", *[f"top-1 at {t:.1f} MFLOPs (%)" for t in budgets],
              "subnets evaluated"],
      rows=rows, plots=[plot],
      reading=reading,
      notes="One supernet per seed, trained with the full loss and 30% of the training data held "
            "out (`data.val_fraction=0.3`, as the paper); the searches score subnets on that 30%, "
            "the table reports test top-1.")


def palette_vs_alone(study: Study) -> Section:
  """Each rule-picked member of the TOFA-full supernet against its architecture trained
  alone (FixMatch, the same start, data and steps)."""
  palette = "members"
  per_member: dict[int, dict[str, list]] = {}
  for seed in study.seeds:
    report = study.palette(palette, "tofa", seed)
    for row in report["models"]:
      i = int(row["member"])
      path = os.path.join(study.runs.kept, "archs", f"seed{seed}_member{i}.json")
      os.makedirs(os.path.dirname(path), exist_ok=True)
      with open(path, "w") as f:
        json.dump(row["arch"], f)
      alone = Arm(f"alone_member{i}", "a palette member's arch trained alone",
                  (("train.mode", "single"), ("train.arch", path), ("loss.variant", "fm")))
      result = study.train(alone, seed)
      entry = per_member.setdefault(i, {"mflops": [], "palette": [], "alone": []})
      entry["mflops"].append(row["mflops"])
      entry["palette"].append(row["top1"])
      entry["alone"].append(next(v for k, v in result.items() if k.startswith("top1_")))
  rows, reading = [], []
  for i, e in sorted(per_member.items()):
    rows.append([str(i), f"{summary(e['mflops']).mean:.1f}", summary(e["palette"]).pct(),
                 summary(e["alone"]).pct()])
    reading.append(as_good_as(e["palette"], e["alone"],
                              f"Member {i}, from the palette as good as trained alone"))
  return Section(
      key="palette_vs_alone", title="Beyond the papers: palette members against training each "
                                    "alone",
      claim="TOFA's palette members are ready to run with no fine-tuning; training each member "
            "alone for the same steps should not beat them by much.",
      header=["member", "MFLOPs", "from the supernet (%)", "trained alone (%)"],
      rows=rows, reading=reading,
      notes="Members: TOFA-full's palette by the rule. Alone: that architecture (`train.mode="
            "'single'`, `train.arch=<member JSON>`) with FixMatch, from the same ImageNet start, "
            "for the same number of steps on the same data.")

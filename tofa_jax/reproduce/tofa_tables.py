"""TOFA's comparisons: Table 3 (baselines), Table 4 (loss variants), section 4.6 (the
zero-cost rule against searches) and, beyond the paper, palette members against the
same architectures trained alone."""

from __future__ import annotations

import json
import os

from tofa_jax.reproduce import budgets as budgets_lib
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


# Section 4.6's rows: (palette, method of its comparison). One palette per seed runs the
# rule with size ranges and the two searches; a second, the literal rule alone (no data).
SELECTION_ROWS = {"bands": ("selection", "rule"), "literal": ("selection_literal", "rule"),
                  "predictor": ("selection", "predictor"), "random": ("selection", "random")}
SELECTION_NAMES = {
    "bands": "zero-cost rule within size ranges (Algorithm 2, `palette.rule='bands'`)",
    "literal": "zero-cost rule as printed (p(a) <= t alone, `palette.rule='literal'`)",
    "predictor": "evolution + accuracy predictor", "random": "random search"}


def _duplicates(picks: list[dict]) -> list[int | None]:
  """Each pick's `duplicate_of` (palette.json); for palettes older than that field, the
  first earlier pick with the same arch."""
  if all("duplicate_of" in p for p in picks):
    return [p["duplicate_of"] for p in picks]
  first: dict[str, int] = {}
  out = []
  for i, p in enumerate(picks):
    key = json.dumps(p.get("arch"), sort_keys=True) if p.get("arch") else None
    out.append(None if key is None else first.get(key))
    if key is not None:
      first.setdefault(key, i)
  return out


def selection_results(palettes: list[dict[str, dict]]) -> dict[str, dict]:
  """Per row of SELECTION_ROWS, from each seed's palettes (name -> palette.json, in seed
  order): 'top1' (per budget, one value per seed: None where nothing was picked),
  'evaluated' (validation evaluations per seed), 'duplicates' and 'fallbacks' (picks
  that repeat an earlier pick of the same method and seed; the rule's band fallbacks)
  and 'picks' (how many picks in all)."""
  out = {}
  for row, (name, method) in SELECTION_ROWS.items():
    runs = [p[name]["comparison"][method] for p in palettes]
    n = len(runs[0]["picks"])
    out[row] = {
        "top1": [[r["picks"][i].get("top1") if r["picks"][i].get("arch") else None
                  for r in runs] for i in range(n)],
        "evaluated": [r["evaluated_on_validation"] for r in runs],
        "duplicates": sum(d is not None for r in runs for d in _duplicates(r["picks"])),
        "fallbacks": sum(bool(p.get("fallback")) for r in runs for p in r["picks"]),
        "picks": sum(len(r["picks"]) for r in runs)}
  return out


def _per_seed_mean(top1: list[list]) -> list:
  """Each seed's mean over the budgets (None where a budget has no pick)."""
  return [None if any(v is None for v in col) else sum(col) / len(col)
          for col in zip(*top1, strict=True)]


def selection(study: Study) -> Section:
  """Section 4.6: the rule (size ranges and as printed) against the two searches at
  `study.selection_budgets` budgets above the minnet's cost, and their cost."""
  keys = (*budgets_lib.palette_keys(study.base, int(study.base.study.selection_budgets)),
          ("palette.method", "rule"))
  palettes = [{"selection": study.palette(
                   "selection", "held_out", s, (*keys, ("palette.rule", "bands"),
                                                ("palette.compare", ("predictor", "random")))),
               "selection_literal": study.palette(
                   "selection_literal", "held_out", s,
                   (*keys, ("palette.rule", "literal"), ("palette.compare", ())))}
              for s in study.seeds]
  budgets = palettes[0]["selection"]["budgets"]
  got = selection_results(palettes)
  rows = []
  for row, name in SELECTION_NAMES.items():
    g = got[row]
    rows.append([name, *[summary(v).pct() for v in g["top1"]],
                 f"{sum(g['evaluated']) / len(g['evaluated']):.0f}",
                 f"{g['duplicates']} of {g['picks']}",
                 f"{g['fallbacks']} of {g['picks']}" if row == "bands" else "n/a"])
  top1 = {row: g["top1"] for row, g in got.items()}
  reading = [as_good_as(top1["bands"][i], top1[m][i],
                        f"At {t:.1f} MFLOPs, the rule (size ranges) as good as {m}")
             for i, t in enumerate(budgets) for m in ("predictor", "random")]
  mean = {row: _per_seed_mean(v) for row, v in top1.items()}
  reading += [as_good_as(mean[r], mean[m], f"Over the {len(budgets)} budgets, the rule "
                         f"({'size ranges' if r == 'bands' else 'as printed'}) as good as {m}")
              for r in ("bands", "literal") for m in ("predictor", "random")]
  reading.append(beats(mean["bands"], mean["literal"], "Over the budgets, the rule within size "
                       "ranges > the rule as printed"))
  series = {SELECTION_NAMES[r].split(" (")[0]: [(t, summary(v).mean) for t, v in
                                                zip(budgets, top1[r], strict=True)
                                                if summary(v).values] for r in top1}
  plot = "selection.png"
  palette_plots.accuracy_vs(series, "budget (MFLOPs)",
                            "TOFA 4.6 analog: test top-1 at each budget",
                            os.path.join(study.plots, plot))
  lo = palettes[0]["selection"]["metric_range"][0]
  return Section(
      key="selection", title="TOFA section 4.6 analog: the zero-cost rule against searches",
      claim="The fixed selection rule is as accurate as evolutionary search with an accuracy "
            "predictor (~1,000 subnet evaluations) and random search (~10 per budget), at no "
            "evaluation cost (paper, section 4.6, Figures 8-11).",
      header=["method", *[f"top-1 at {t:.1f} MFLOPs (%)" for t in budgets],
              "subnets evaluated", "duplicate picks", "band fallbacks"],
      rows=rows, plots=[plot],
      reading=reading,
      notes=f"One supernet per seed, trained with the full loss and 30% of the training data held "
            "out (`data.val_fraction=0.3`, as the paper); the searches score subnets on that 30%, "
            f"the table reports test top-1. {len(budgets)} budgets evenly spaced above the "
            f"minnet's {lo:.2f} MFLOPs up to the maxnet's (t_i = c_min + i (c_max - c_min) / "
            f"{len(budgets)}), so no budget fits the minnet alone. The rule within size ranges "
            "takes each member from (t_(i-1), t_i] (the first from p(a) <= t_1), falling back to "
            "p(a) <= t_i "
            "where that range holds no subnet of Omega; as printed, from p(a) <= t_i. Duplicate "
            "picks: picks that repeat an earlier budget's pick of the same method and seed "
            "(`duplicate_of`), over all seeds and budgets; they keep their top-1 in the table.")


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

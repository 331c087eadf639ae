"""The palette's files: palette.json, palette.csv and its plots; `read` reads a
palette.json back for the commands that take one (export, finetune).

`write_csv` is also called by `deployed.export_palette`, which adds each
exported format's test top-1 to the report.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from tofa_jax.search import palette_plots


def write(out: str, report: dict, matrix: np.ndarray) -> None:
  """palette.json, palette.csv and the plots."""
  with open(os.path.join(out, "palette.json"), "w") as f:
    json.dump(report, f, indent=1)
  write_csv(out, report)
  rows = report["models"]
  series = {m: [(p["mflops"], p["top1"]) for p in c["picks"] if p["arch"]]
            for m, c in report["comparison"].items()}
  palette_plots.accuracy_vs(series, "MFLOPs", f"selection methods ({report['space']})",
                            os.path.join(out, "accuracy_vs_mflops.png"))
  palette_plots.accuracy_vs({report["method"]: [(r["latency_ms"]["1"], r["top1"])
                                                for r in rows]},
                            f"latency, batch 1 ({_runtime_label(report)}), ms",
                            "palette: accuracy vs latency",
                            os.path.join(out, "accuracy_vs_latency.png"))
  if len(rows):
    names = [f"#{r['member']} {r['mflops']:.3g}M" for r in rows]
    palette_plots.nfr_heatmap(matrix, names, os.path.join(out, "nfr_heatmap.png"))
  if report["population"]:
    bins = [(f"{b['low_mflops']:.0f}-{b['high_mflops']:.0f}", b["top1"])
            for b in report["population"]]
    palette_plots.population_boxplot(bins, "MFLOPs bin", os.path.join(out, "population.png"))


def _runtime_label(report: dict) -> str:
  lat = report.get("latency") or {"runtime": "jax", "threads": None, "backend": "?"}
  if lat["runtime"] == "jax":
    return f"jax, {lat['backend']}"
  return f"{lat['runtime']}, {lat['threads']} thread{'s' if lat['threads'] != 1 else ''}"


def write_csv(out: str, report: dict) -> None:
  """palette.csv: one row per member; a `top1_<format>` column per exported format.
  `duplicate_of` is the member this one repeats (empty if none); palettes written before
  the `fallback` and `duplicate_of` fields leave them empty."""
  rows = report["models"]
  formats = list(dict.fromkeys(f for r in rows for f in r.get("exports", {})))
  fields = ["member", "budget", "method", "resolution", "mflops", "params_m", "memory_mb",
            "latency_ms_b1", "latency_ms_batch", "top1", *[f"top1_{f}" for f in formats],
            "nfr_from_smaller", "nfr_to_larger", "selection", "fallback", "duplicate_of", "arch",
            "export_dir"]
  with open(os.path.join(out, "palette.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fields)
    w.writeheader()
    for r in rows:
      lat = list(r["latency_ms"].values())
      exports = {f"top1_{k}": v.get("top1", "") for k, v in r.get("exports", {}).items()}
      w.writerow({**{k: r.get(k, "") for k in fields}, "arch": json.dumps(r["arch"]),
                  "latency_ms_b1": lat[0], "latency_ms_batch": lat[-1], **exports})


def read(palette_json: str) -> tuple[dict, list[dict]]:
  """(palette.json's content, its members) for the commands that read a palette
  (export, finetune); one-line errors name --palette."""
  if not os.path.isfile(palette_json):
    raise ValueError(f"--palette={palette_json}: no such file (python -m tofa_jax.palette "
                     "writes DIR/palettes/NAME/palette.json)")
  try:
    with open(palette_json) as f:
      report = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"--palette={palette_json}: not a palette report ({e})") from None
  if not isinstance(report, dict):
    raise ValueError(f"--palette={palette_json}: not a palette report (no members)")
  return report, list(report.get("models") or [])

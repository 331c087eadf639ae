"""The RSS paper's comparisons: population accuracy per MFLOPs bin for the sampling
schemes (its Figure 3 and section 6.3.1), then its section 6.3.2 bias schemes."""

from __future__ import annotations

import os

import numpy as np

from tofa_jax.reproduce import plots
from tofa_jax.reproduce.arms import ARMS
from tofa_jax.reproduce.context import Study
from tofa_jax.reproduce.sections import Section
from tofa_jax.reproduce.stats import beats, summary

SCHEMES = ("progressive_shrinking", "rss_epoch", "rss_batch", "sandwich")
BIAS = ("single_min", "single_mid", "single_max", "min_then_max", "max_then_min",
        "alternating", "rss_epoch")


def _population(study: Study, arm: str):
  """Per bin: labels, the top-1 values pooled over seeds; and each seed's mean, in seed
  order (the paired verdicts need them aligned)."""
  extra = (("palette.population_bins", int(study.base.study.population_bins)),
           ("palette.resolutions", tuple(study.base.model.resolutions)),
           ("palette.method", "rule"), ("palette.compare", ()))
  reports = [study.palette(f"population_{arm}", arm, s, extra) for s in study.seeds]
  bins = reports[0]["population"]
  labels = [f"{b['low_mflops']:.3g}-{b['high_mflops']:.3g}" for b in bins]
  pooled = [[v for r in reports for v in r["population"][i]["top1"]] for i in range(len(bins))]
  per_seed = [float(np.mean([v for b in r["population"] for v in b["top1"]])) for r in reports]
  return labels, pooled, per_seed


def _section(study: Study, key: str, arms: tuple[str, ...], title: str, claim: str, notes: str,
             reading) -> Section:
  got = {a: _population(study, a) for a in arms}
  labels = got[arms[0]][0]
  rows = [[a, ARMS[a].what, summary(got[a][2]).pct(),
           *[f"{100 * np.mean(v):.1f}" if v else "n/a" for v in got[a][1]]] for a in arms]
  plot = f"{key}.png"
  plots.grouped_boxes(labels, {a: got[a][1] for a in arms}, title,
                      os.path.join(study.plots, plot))
  return Section(key=key, title=title, claim=claim,
                 header=["scheme", "what", "population mean top-1 (%)",
                         *[f"bin {b} MFLOPs" for b in labels]],
                 rows=rows, plots=[plot], reading=reading(got), notes=notes)


def _notes(study: Study) -> str:
  s = study.base.study
  return (f"Supervised, as the RSS paper: {int(s.rss_labelled)} labelled digits, labelled CE, "
          "no teacher except in the sandwich. The population: "
          f"{int(s.population_bins)} MFLOPs bins x {int(study.base.palette.population_per_bin)} "
          "random subnets (the same subnets for every scheme), each BN-recalibrated and scored "
          "on the test split; per-bin figures pool the seeds.")


def schemes(study: Study) -> Section:
  def reading(got):
    v = lambda a: got[a][2]  # noqa: E731
    return [beats(v("rss_epoch"), v("progressive_shrinking"),
                "RSS (per epoch) > progressive shrinking"),
            beats(v("rss_epoch"), v("rss_batch"), "per-epoch > per-batch sampling"),
            beats(v("sandwich"), v("rss_epoch"),
                "sandwich (not an RSS claim, for reference) > RSS")]
  return _section(
      study, "rss_schemes", SCHEMES,
      "RSS analog: subnet population accuracy by sampling scheme",
      "Random subnet sampling (one subnet per epoch) trains a better population than OFA's "
      "progressive shrinking, and per-epoch beats per-batch sampling (RSS sections 6.2, "
      "6.3.1).", _notes(study), reading)


def bias(study: Study) -> Section:
  def reading(got):
    v = lambda a: got[a][2]  # noqa: E731
    out = []
    for a in ("single_min", "single_mid", "single_max"):
      means = [np.mean(x) if x else -1.0 for x in got[a][1]]
      out.append(f"{a}: its best bin is {got[a][0][int(np.argmax(means))]} MFLOPs of "
                 f"{', '.join(got[a][0])}.")
    out += [beats(v("alternating"), v("min_then_max"), "alternating > min then max"),
            beats(v("alternating"), v("max_then_min"), "alternating > max then min"),
            beats(v("min_then_max"), v("max_then_min"), "min then max > max then min"),
            beats(v("rss_epoch"), v("alternating"), "RSS > alternating")]
    return out
  return _section(
      study, "rss_bias", BIAS, "RSS Figures 6-7 analog: biased selection schemes",
      "Training one subnet skews the population towards its size; of the two-subnet schemes, "
      "alternating is the least biased and the best, min-then-max beats max-then-min, and RSS "
      "beats them all (RSS section 6.3.2).",
      _notes(study) + " The two-subnet schemes use a constant learning rate, as the paper.",
      reading)

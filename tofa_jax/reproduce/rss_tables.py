"""The RSS paper's comparisons: population accuracy per MFLOPs bin for the sampling
schemes (its Figure 3 and section 6.3.1), then its section 6.3.2 bias schemes. Each
table also gives every scheme's labelled loss at its last step against chance (ln of the
class count: 2.30 for 10 classes), which says whether its population trained at all."""

from __future__ import annotations

import math
import os

import numpy as np

from tofa_jax.config import facts
from tofa_jax.cost import cost_model
from tofa_jax.reproduce import plots
from tofa_jax.reproduce.arms import ARMS
from tofa_jax.reproduce.context import Study
from tofa_jax.reproduce.sections import Section
from tofa_jax.reproduce.stats import beats, summary
from tofa_jax.space import sampling, search_space

SCHEMES = ("progressive_shrinking", "rss_epoch", "rss_batch", "sandwich")
BIAS = ("single_min", "single_median", "single_max", "min_then_max", "max_then_min",
        "alternating", "rss_epoch")
SINGLE = ("single_min", "single_median", "single_max")


def _population(study: Study, arm: str):
  """Per bin: labels, the top-1 values pooled over seeds; and each seed's mean, in seed
  order (the paired verdicts need them aligned)."""
  extra = (("palette.population_bins", int(study.base.study.population_bins)),
           ("palette.resolutions", tuple(study.base.study.rss_resolutions)),
           ("palette.method", "rule"), ("palette.compare", ()))
  reports = [study.palette(f"population_{arm}", arm, s, extra) for s in study.seeds]
  bins = reports[0]["population"]
  labels = [f"{b['low_mflops']:.3g}-{b['high_mflops']:.3g}" for b in bins]
  pooled = [[v for r in reports for v in r["population"][i]["top1"]] for i in range(len(bins))]
  per_seed = [float(np.mean([v for b in r["population"] for v in b["top1"]])) for r in reports]
  return labels, pooled, per_seed


def classes(study: Study) -> int:
  return int(facts.num_classes(study.base.data))


def final_losses(study: Study, arm: str) -> list:
  """The arm's labelled loss at its last logged step, per seed (None where not logged)."""
  return [study.runs.final(arm, s, "train/loss_lab") for s in study.seeds]


def loss_reading(losses: dict[str, list], num_classes: int) -> str:
  """One sentence: each arm's last labelled loss (mean over seeds) against chance, the
  loss of a uniform prediction, ln(classes) (label smoothing leaves it unchanged)."""
  chance = math.log(num_classes)
  below = [a for a, v in losses.items() if summary(v).values and summary(v).mean < chance]
  above = [a for a in losses if a not in below]
  text = (f"Labelled loss at the last step against chance (ln {num_classes} = {chance:.2f}): "
          + ", ".join(f"{a} {summary(v).mean:.2f}" for a, v in losses.items()) + "; ")
  if not above:
    return text + "every population trained."
  return text + f"{', '.join(above)} did not fall below chance: their populations never trained."


def _section(study: Study, key: str, arms: tuple[str, ...], title: str, claim: str, notes: str,
             reading) -> Section:
  got = {a: _population(study, a) for a in arms}
  losses = {a: final_losses(study, a) for a in arms}
  labels = got[arms[0]][0]
  rows = [[a, ARMS[a].what, _loss(losses[a]), summary(got[a][2]).pct(),
           *[f"{100 * np.mean(v):.1f}" if v else "n/a" for v in got[a][1]]] for a in arms]
  plot = f"{key}.png"
  plots.grouped_boxes(labels, {a: got[a][1] for a in arms}, title,
                      os.path.join(study.plots, plot))
  n = classes(study)
  return Section(key=key, title=title, claim=claim,
                 header=["scheme", "what", f"last labelled loss (chance {math.log(n):.2f})",
                         "population mean top-1 (%)", *[f"bin {b} MFLOPs" for b in labels]],
                 rows=rows, plots=[plot], reading=[loss_reading(losses, n), *reading(got)],
                 notes=notes)


def _loss(values: list) -> str:
  s = summary(values)
  if not s.values:
    return "n/a"
  return f"{s.mean:.2f}" + (f" ± {s.std:.2f}" if len(s.values) > 1 else "")


def _notes(study: Study) -> str:
  s = study.base.study
  arm = study.config("rss_epoch", study.seeds[0])
  px = " and ".join(str(r) for r in s.rss_resolutions)
  return (f"Supervised, as the RSS paper: {int(s.rss_labelled)} labelled digits, labelled CE, "
          f"no teacher except in the sandwich; from random weights at {px} px, as RSS trains "
          f"(from scratch, kernel, depth and width elastic), for {int(s.rss_epochs)} epochs of "
          f"those digits ({int(arm.train.steps)} steps of {int(arm.train.batch_size)}, learning "
          f"rate {float(arm.optim.lr):g}: RSS's 0.01 at batch 64, per image). RSS's "
          "schedule for MNIST, the dataset the study mirrors, is 37 epochs of 60,000 images "
          "(RSS Table 1; 590 is its CIFAR schedule), about 35,000 steps of 64: a 2-core CPU "
          "affords the epochs, not the images. The population: "
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


def single_costs(study: Study) -> dict[str, float]:
  """MFLOPs of the subnet each single-subnet arm trains, in the RSS arms' space."""
  space = search_space.resolve(study.config("single_median", study.seeds[0]).model)
  cost = cost_model.CostModel(space, classes(study)).metric_fn("mflops")
  return {a: cost(f(space)) for a, f in zip(SINGLE, (sampling.min_arch, sampling.median_arch,
                                                   sampling.max_arch), strict=True)}


def bias(study: Study) -> Section:
  costs = single_costs(study)

  def reading(got):
    v = lambda a: got[a][2]  # noqa: E731
    out = []
    for a in SINGLE:
      means = [np.mean(x) if x else -1.0 for x in got[a][1]]
      out.append(f"{a} ({costs[a]:.2f} MFLOPs): its best bin is "
                 f"{got[a][0][int(np.argmax(means))]} MFLOPs of {', '.join(got[a][0])}.")
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
      _notes(study) + " The two-subnet schemes use a constant learning rate, as the paper. "
      "RSS's middle subnet is the median-cost one here (`single_median`, "
      "`sampling.median_arch`): the subnet nearest the middle of the MFLOPs range, the "
      "median cost of the evenly binned population; the middle choice of every dimension "
      "(RSS's kernel 5, expansion 4, depth 3 in OFA's space) costs 1.3 times the min in "
      "lite0 and would sit in the bottom bin.",
      reading)

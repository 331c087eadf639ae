"""A palette of ready models from one trained supernet, one per budget.

`run(config, workdir)` is what `python -m tofa_jax.palette` does. The trained
supernet and Omega come from the latest checkpoint. For each budget t
(`palette.budgets`, or `palette.num_budgets` evenly spaced over the space's
range of `palette.metric`, for MFLOPs within the space's `mflops_window`) one
subnet is chosen by `palette.method`:

  rule       TOFA Algorithm 2: the subnet of Omega with the highest index
             (`palette.index`: last | score) among those in t's size range
             t_prev < p(a) <= t (`palette.rule='bands'`; an empty range falls
             back to p(a) <= t, marked `fallback`), or among all with p(a) <= t
             (`palette.rule='literal'`). No data.
  evolution  TOFA eq. (5): evolutionary search for the best validation top-1.
  random     `palette.random_samples` random subnets, best validation top-1.
  predictor  TOFA 4.6 (a): `palette.predictor.samples` subnets spread over the
             MFLOPs range are evaluated once on validation data, an accuracy
             predictor (OFA's MLP, predictor.py) is fitted to them, and the
             evolutionary search per budget maximises the predicted top-1.
  regnas     REG-NAS: budgets in increasing order; the first member by
             validation top-1, each next one by evolutionary search inside the
             CAS set of the previous member (it contains all its weights; off
             with `palette.cas=False`) with the reward
             lambda1 * Top1 - lambda2 * NFR(previous, candidate).

The searches draw subnets with `palette.search_floor` * t <= p(a) <= t. They
score on `data.val_fraction` of the training data held out in training, or else
`palette.val_fraction` carved from it now (then the supernet has seen it;
palette.json says which), BN recalibrated before every evaluation on the
trainer's `evals.bn_images` training images (`data/calibration.py`, validation
excluded), one compiled program per resolution.

Every member is then evaluated on the test split: top-1, MFLOPs, params,
activation memory, latency on this backend (batch 1 and `palette.latency_batch`),
and the negative flip rate to its neighbours; the palette's pairwise NFR matrix
is reported. A member that is the same subnet as an earlier one says so
(`duplicate_of`). `palette.compare` runs more methods for the comparison plot.
Outputs, in DIR/palettes/NAME/ (`palette.name`, by default METHOD-METRIC-BUDGETS;
written aside and swapped in once finished, `palette_store.py`): palette.json,
palette.csv, accuracy_vs_mflops.png, accuracy_vs_latency.png, nfr_heatmap.png,
population.png (when `palette.population_bins` > 0) and models/member_XX/ (static
models with their recalibrated BN and the class names, for `python -m
tofa_jax.predict --params=...` and `tofa_jax.Palette.load`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import numpy as np

from tofa_jax.cost import cost_model
from tofa_jax.data import calibration, datasets, loading
from tofa_jax.deploy import latency_table, runtimes
from tofa_jax.deploy.runtime_latency import RuntimeLatencyMeter
from tofa_jax.model import supernet
from tofa_jax.search import (
  evolution,
  palette_report,
  palette_store,
  population,
  predictor,
  progress,
  regression,
  selection,
)
from tofa_jax.search.subnet_eval import SubnetEvaluator
from tofa_jax.space import arch as arch_lib
from tofa_jax.space import genome, sampling, search_space
from tofa_jax.train import checkpointing, subnet_record
from tofa_jax.weights import export, pretrained

METHODS = ("rule", "evolution", "random", "regnas", "predictor")


@dataclasses.dataclass
class Pick:
  budget: float
  arch: arch_lib.Arch | None
  note: str = ""  # why there is no arch, or the rule's index value
  fallback: bool = False  # rule 'bands': nothing in the size range; picked under p(a) <= t


@dataclasses.dataclass
class MethodRun:
  method: str
  picks: list[Pick]
  seconds: float
  evaluated: int  # subnets evaluated on validation data
  info: dict[str, Any] = dataclasses.field(default_factory=dict)  # for the comparison


class Palette:
  """Everything a palette run needs, loaded once from a workdir."""

  def __init__(self, config, workdir: str, log=print):
    if jax.process_count() > 1:
      raise ValueError("the palette runs in one process; start it on one host")
    self.config, self.pc, self.workdir, self.log = config, config.palette, workdir, log
    _check(self.pc)
    self.space = search_space.resolve(config.model)
    self.data = loading.load_data(config)
    ckpt = checkpointing.Checkpointer(workdir, read_only=True)  # falls back, moves nothing
    try:
      self.step, variables, meta = ckpt.restore_trained(
          check_meta=lambda m: subnet_record.SubnetRecord.from_state(m["omega"]))
    finally:
      ckpt.close()
    self.variables = jax.tree.map(np.asarray, variables)
    self.omega = subnet_record.SubnetRecord.from_state(meta["omega"])
    self.num_classes = self.data.num_classes
    self.model = supernet.build(self.space, self.num_classes,
                                depthwise_impl=config.model.depthwise_impl)
    self.mean, self.std = pretrained.normalization(config)
    # By default, the resolutions the run trained at: every one its Omega holds.
    self.resolutions = tuple(self.pc.resolutions) or tuple(
        sorted({a.resolution for a, _ in self.omega.archs()}))
    self.genome = genome.Genome(self.space, self.resolutions)
    pc = self.pc  # keys newer than a run's saved config get their defaults
    self.latency = RuntimeLatencyMeter(self.space, self.variables, self.num_classes,
                                       pc.get("latency_runtime", "jax"),
                                       int(pc.get("latency_threads", 1)),
                                       int(pc.latency_repeats), int(pc.get("latency_warmup", 2)))
    self.table = (latency_table.load(pc.latency_table, self.space, self.num_classes)
                  if pc.get("latency_table") else None)
    self.cost = cost_model.CostModel(
        self.space, self.num_classes,
        latency_ms=self.table.predict if self.table else lambda a: self.latency(a, 1))
    self.metric = self.cost.metric_fn(self.pc.metric)
    sizes = [len(g.choices) for g in self.genome.genes]
    self.range = (self.metric(self.genome.decode([0] * len(sizes))),
                  self.metric(self.genome.decode([n - 1 for n in sizes])))
    window = self.space.mflops_window if self.pc.metric == "mflops" else None
    self.budgets = selection.budgets(tuple(self.pc.budgets), int(self.pc.num_budgets),
                                     *self.range, window)
    self.rng = np.random.default_rng(int(self.pc.seed))
    # BN recalibrates on the trainer's images (data/calibration.py): the run's final
    # evaluation and its palette score a subnet alike. Every test image counts.
    calib = calibration.of_config(config, self.data)
    self.log(f"palette: {calibration.describe(len(calib), self.data)}")
    self.test = SubnetEvaluator(self.model, self.variables, self.mean, self.std,
                                (self.data.train, calib),
                                (self.data.test, np.arange(len(self.data.test))),
                                int(config.evals.batch_size))
    self._val: SubnetEvaluator | None = None
    self.val_info: dict[str, Any] = {}

  # -- validation data (TOFA 4.6) --------------------------------------------------

  @property
  def val(self) -> SubnetEvaluator:
    if self._val is None:
      if len(self.data.val_idx):
        val_idx, held_out = self.data.val_idx, True
      else:
        labels = np.asarray(self.data.train.labels)
        _, val_idx = datasets.validation_split(labels, float(self.pc.val_fraction),
                                               int(self.pc.seed))
        held_out = False
        self.log(f"palette: no validation split was held out in training (data.val_fraction"
                 f"=0); searching on {len(val_idx)} training images the supernet has seen")
      calib = calibration.of_config(self.config, self.data, exclude=val_idx)
      self._val = SubnetEvaluator(self.model, self.variables, self.mean, self.std,
                                  (self.data.train, calib), (self.data.train, val_idx),
                                  int(self.config.evals.batch_size))
      self.val_info = {"examples": int(len(val_idx)), "held_out_in_training": held_out}
    return self._val

  def val_top1(self, arch: arch_lib.Arch) -> float:
    return self.val.top1(arch)

  # -- selection methods ------------------------------------------------------------

  def run_method(self, method: str) -> MethodRun:
    t0 = time.perf_counter()
    before = self._val.evaluated if self._val is not None else 0
    picks = getattr(self, f"_{method}")()
    picks, info = picks if isinstance(picks, tuple) else (picks, {})
    # A method that counts its own cost says so: the evaluator's cache may already hold
    # subnets an earlier method evaluated.
    evaluated = info.pop("evaluated", None)
    if evaluated is None:
      evaluated = (self._val.evaluated if self._val is not None else 0) - before
    return MethodRun(method, picks, time.perf_counter() - t0, evaluated, info)

  def _rule(self) -> tuple[list[Pick], dict[str, Any]]:
    omega = [(a, e) for a, e in self.omega.archs() if a.resolution in self.resolutions]
    if not omega:
      raise ValueError(f"Omega holds no subnet at palette.resolutions={list(self.resolutions)};"
                       " use the training resolution")
    index = self.pc.index
    fixed = [dataclasses.replace(sampling.min_arch(self.space), resolution=r)
             for r in self.resolutions]  # the sandwich's min, at any resolution it trained at
    rule = self.pc.get("rule", "bands")  # a run's saved config may predate the key
    chosen = selection.select(omega, self.metric, self.budgets, index, fixed, rule)
    entries = {a: e for a, e in omega}
    picks = []
    for t, c in zip(self.budgets, chosen, strict=True):
      note = f"{index}={entries[c.arch][index]}" if c.arch else "no subnet of Omega fits"
      if c.fallback:
        note += " (fallback: no subnet of Omega in this budget's size range)"
        self.log(f"palette: rule, budget {t:.4g}: no subnet of Omega between it and the next "
                 "smaller budget; the member is the rule's pick under p(a) <= t (fallback)")
      picks.append(Pick(t, c.arch, note, c.fallback))
    return picks, {"rule": rule, "index": index}  # also when the rule is only compared

  def _sampler(self, budget: float, reference=None) -> genome.Sampler | None:
    try:  # palette.search_floor: the searches' subnets cost at least that share of t
      return genome.Sampler(self.genome, self.metric, budget, self.rng, reference,
                            float(self.pc.get("search_floor", 0.0)))
    except genome.InfeasibleBudget:
      return None

  def _progress(self, method: str, per_budget: int) -> progress.SearchProgress:
    return progress.SearchProgress(self.log, f"palette: {method}",
                                   per_budget * len(self.budgets),
                                   float(self.pc.get("progress_every_s", 30.0)))

  def _evolution(self) -> list[Pick]:
    cfg = evolution.EvolutionConfig(**self.pc.evolution)
    fitness = self._progress("evolution", cfg.most_evaluations).wrap(self.val_top1)
    return self._search_each_budget("evolution",
                                    lambda sampler: evolution.evolve(sampler, fitness, cfg))

  def _random(self) -> list[Pick]:
    samples = int(self.pc.random_samples)
    fitness = self._progress("random", samples).wrap(self.val_top1)
    return self._search_each_budget(
        "random", lambda sampler: evolution.random_search(sampler, fitness, samples))

  def _predictor(self) -> tuple[list[Pick], dict[str, Any]]:
    cfg = predictor.PredictorConfig(**self.pc.get("predictor", {}))
    cfg.check()
    evo = evolution.EvolutionConfig(**self.pc.evolution)
    archs = predictor.spread_samples(self.genome, self.cost.metric_fn("mflops"), cfg.samples,
                                     self.rng)
    counted = progress.SearchProgress(self.log, "palette: predictor", len(archs),
                                      float(self.pc.get("progress_every_s", 30.0)))
    fitness = counted.wrap(self.val_top1)
    model, fit = predictor.fit(self.genome, archs, [fitness(a) for a in archs], cfg,
                               int(self.pc.seed))
    self.log(f"palette: predictor: {len(archs)} subnets evaluated; {predictor.describe(fit)}")
    picks = self._search_each_budget("predictor", lambda s: evolution.evolve(s, model, evo),
                                     "predicted_top1")
    return picks, {"evaluated": len(archs), "predictor": fit}

  def _search_each_budget(self, name: str, search, what: str = "val_top1") -> list[Pick]:
    """Per budget, the best fitness (validation top-1 by default) `search(sampler)` finds."""
    picks = []
    for t in self.budgets:
      sampler = self._sampler(t)
      if sampler is None:
        picks.append(Pick(t, None, "below the smallest subnet"))
        continue
      result = search(sampler)
      picks.append(Pick(t, result.best, f"{what}={result.fitness:.4f}"))
      self.log(f"palette: {name}, budget {t:.4g}: {what} {result.fitness:.4f} "
               f"({len(result.history)} subnets)")
    return picks

  def _regnas(self) -> list[Pick]:
    cfg = evolution.EvolutionConfig(**self.pc.evolution)
    reward = regression.reward(self.pc.reward, tuple(self.pc.lambdas))
    counted = self._progress("regnas", cfg.most_evaluations).wrap
    picks, reference = [], None
    cas = bool(self.pc.get("cas", True))  # off: the reward alone (REG-NAS's ablation)
    for t in self.budgets:
      sampler = self._sampler(t, reference if cas else None)
      if sampler is None:
        picks.append(Pick(t, None, "below the smallest subnet"))
        continue
      if reference is None:  # the first member has nothing to flip against: Top-1 (R0)
        fitness = self.val_top1
      else:
        ref_pred = self.val.predictions(reference)
        fitness = lambda a, r=ref_pred: reward(self.val.predictions(a), self.val.labels, r)  # noqa: E731
      result = evolution.evolve(sampler, counted(fitness), cfg)
      note = f"reward={result.fitness:.4f}" + ("" if reference else " (R0, first member)")
      picks.append(Pick(t, result.best, note))
      self.log(f"palette: regnas, budget {t:.4g}: {note}")
      reference = result.best
    return picks

  # -- reports ----------------------------------------------------------------------

  def describe(self, arch: arch_lib.Arch, with_latency: bool = True) -> dict[str, Any]:
    d = {"arch": arch.to_dict(per_layer=self.space.per_layer), "resolution": arch.resolution,
         "mflops": self.cost(arch, "mflops"), "params_m": self.cost(arch, "params"),
         "memory_mb": self.cost(arch, "memory"), "top1": self.test.top1(arch)}
    if with_latency:
      lat = self.latency.measure(arch, (1, int(self.pc.latency_batch)))
      d["latency_ms"] = {str(b): v for b, v in lat.items()}
      if self.table:
        d["latency_ms_predicted"] = self.table.predict(arch)
    return d

  def latency_info(self) -> dict[str, Any]:
    """How `latency_ms` was measured, and the table that `palette.metric=latency` used."""
    return {**self.latency.describe(), "batch_sizes": [1, int(self.pc.latency_batch)],
            "backend": jax.default_backend() if self.latency.runtime == "jax" else "cpu",
            "table": self.table.describe() if self.table else None}


def run(config, workdir: str, log=print) -> dict[str, Any]:
  """Builds the palette of `workdir`'s trained supernet; returns palette.json's content."""
  pal = Palette(config, workdir, log)
  pc = pal.pc
  methods = list(dict.fromkeys([pc.method, *pc.compare]))
  runs = {}
  for m in methods:
    runs[m] = pal.run_method(m)
    log(f"palette: {m}: {runs[m].seconds:.1f} s, {runs[m].evaluated} subnets evaluated on "
        "validation data")

  chosen = runs[pc.method]
  members = [p for p in chosen.picks if p.arch is not None]
  rows = []
  for i, (p, dup) in enumerate(zip(members, selection.duplicates([p.arch for p in members]),
                                   strict=True)):
    row = {"member": i, "budget": p.budget, "method": pc.method, "selection": p.note,
           "fallback": p.fallback, "duplicate_of": dup, **pal.describe(p.arch)}
    rows.append(row)
    log(f"palette: member {i} (budget {p.budget:.4g} {cost_model.UNITS[pc.metric]}): "
        f"{row['mflops']:.1f} MFLOPs, top-1 {row['top1']:.4f}, "
        f"{row['latency_ms']['1']:.2f} ms" + ("" if dup is None else
                                              f"; the same subnet as member {dup}"))
  labels = pal.test.labels
  preds = [pal.test.predictions(p.arch) for p in members]
  matrix = regression.nfr_matrix(preds, labels) if preds else np.zeros((0, 0))
  for i, row in enumerate(rows):
    row["nfr_from_smaller"] = float(matrix[i - 1, i]) if i > 0 else None
    row["nfr_to_larger"] = float(matrix[i, i + 1]) if i + 1 < len(rows) else None

  comparison = {}
  for m, r in runs.items():
    comparison[m] = {"seconds": r.seconds, "evaluated_on_validation": r.evaluated, **r.info,
                     "picks": [{"budget": p.budget, "note": p.note, "fallback": p.fallback,
                                "duplicate_of": dup,  # an earlier pick of this list
                                **(pal.describe(p.arch, with_latency=False) if p.arch else
                                   {"arch": None})}
                               for p, dup in zip(r.picks,
                                                 selection.duplicates([p.arch for p in r.picks]),
                                                 strict=True)]}
  pop = []
  if pc.population_bins:
    bins = population.sample_bins(pal.genome, pal.cost.metric_fn("mflops"),
                                  int(pc.population_bins), int(pc.population_per_bin), pal.rng)
    for b in bins:
      pop.append({"low_mflops": b.low, "high_mflops": b.high,
                  "top1": [pal.test.top1(a) for a in b.archs],
                  "archs": [a.to_dict(per_layer=pal.space.per_layer) for a in b.archs]})

  report = {
      "workdir": os.path.abspath(workdir), "checkpoint_step": pal.step,
      "space": pal.space.name, "metric": pc.metric, "unit": cost_model.UNITS[pc.metric],
      "metric_range": list(pal.range), "budgets": pal.budgets, "method": pc.method,
      "index": pc.index if pc.method == "rule" else None,
      "rule": pc.get("rule", "bands") if pc.method == "rule" else None,
      "reward": ({"preset": pc.reward, "lambdas": list(pc.lambdas),
                  "cas": bool(pc.get("cas", True))} if pc.method == "regnas" else None),
      "test_examples": int(len(labels)), "bn_images": len(pal.test.calib[1]),
      "validation": pal.val_info,
      "omega_size": len(pal.omega), "latency": pal.latency_info(), "models": rows,
      "missing": [{"budget": p.budget, "why": p.note} for p in chosen.picks if p.arch is None],
      "nfr_matrix": matrix.tolist(), "comparison": comparison, "population": pop,
  }
  name = palette_store.name(pc)
  with palette_store.staged(workdir, name) as (out, final):  # swapped in once all is written
    for row, p in zip(rows, members, strict=True) if pc.export else ():
      member_dir = os.path.join(palette_store.MODELS, f"member_{row['member']:02d}")
      info = {k: row[k] for k in ("budget", "mflops", "params_m", "top1", "latency_ms")}
      export.save(os.path.join(out, member_dir), pal.space, p.arch,
                  pal.test.calibrated_variables(p.arch), pal.num_classes, pal.mean, pal.std,
                  {**info, "metric": pc.metric, "palette": name}, pal.data.class_names)
      row["export_dir"] = os.path.join(final, member_dir)  # where it lies once swapped in
    report.update(name=name, created=palette_store.created_now())
    palette_report.write(out, report, matrix)
  return report


def _check(pc) -> None:
  for key, value, allowed in (("method", pc.method, METHODS),
                              ("metric", pc.metric, cost_model.METRICS),
                              ("index", pc.index, selection.INDICES),
                              ("rule", pc.get("rule", "bands"), selection.RULES)):
    if value not in allowed:
      raise ValueError(f"palette.{key}={value!r} is unknown; choose one of {list(allowed)}")
  bad = [m for m in pc.compare if m not in METHODS]
  if bad:
    raise ValueError(f"palette.compare={list(pc.compare)}: {bad} unknown; choose from "
                     f"{list(METHODS)}")
  if int(pc.latency_batch) < 1:
    raise ValueError(f"palette.latency_batch={pc.latency_batch}; use at least 1")
  runtimes.check(pc.get("latency_runtime", "jax"))
  palette_store.name(pc)  # validates palette.name, before any data loads
  regression.reward(pc.reward, tuple(pc.lambdas))  # validates

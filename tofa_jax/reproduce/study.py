"""`run(config, workdir, quick)`: every comparison of the study, then the results page.

Sections run in order and each trains what it needs (or reads back what an earlier
invocation trained), so a study that stops part-way resumes where it stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import jax
import ml_collections

from tofa_jax.reproduce import context, regnas_tables, report, rss_tables, tofa_tables
from tofa_jax.reproduce.runs import Runs
from tofa_jax.runtime import compilation_cache

SECTIONS: dict[str, Callable] = {  # each function returns the section of its key
    "table3": tofa_tables.table3, "table4": tofa_tables.table4,
    "selection": tofa_tables.selection, "rss_schemes": rss_tables.schemes,
    "rss_bias": rss_tables.bias, "regnas_rewards": regnas_tables.rewards,
    "regnas_finetune": regnas_tables.finetuning, "palette_vs_alone": tofa_tables.palette_vs_alone}


def run(config: ml_collections.ConfigDict, workdir: str, quick: bool, command: str,
        docs: str = "", checks: str = "", log: Callable[[str], None] = print,
        kept: str = "", only: Sequence[str] = ()) -> list[str]:
  """Runs the study under `workdir`, keeping its results under `kept` (default:
  `workdir`); returns the pages written (a run that is not quick also writes `docs`, the
  repository's docs/results.md, with what was checked per section from `checks`,
  docs/results_checks.md). `only`: these sections (keys of SECTIONS) alone, and the
  page says which it leaves out."""
  only = tuple(only) or tuple(SECTIONS)
  unknown = sorted(set(only) - set(SECTIONS))
  if unknown:
    raise ValueError(f"--only has sections {unknown}; the study's are {list(SECTIONS)}")
  notes = report.read_checks(checks)  # read first; its keys are checked in quick runs too
  unknown = sorted(set(notes) - set(SECTIONS))
  if unknown:
    raise ValueError(f"{checks} has sections {unknown}; the study's are {list(SECTIONS)}")
  if quick:
    config = context.quick(config)
  os.makedirs(workdir, exist_ok=True)
  # Arms share most programs (the same step, evaluator and calibration shapes): every
  # compiled program goes to the persistent cache, however quick its compile.
  if compilation_cache.enable(config.get("jax_cache_dir", "")):
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  start = time.perf_counter()
  timed = lambda text: log(f"[{time.perf_counter() - start:7.1f} s] {text}")  # noqa: E731
  runs = Runs(workdir, timed, kept)
  study = context.Study(config, workdir, runs, quick)
  sections = []
  for key in (k for k in SECTIONS if k in only):
    make = SECTIONS[key]
    timed(f"study: {make.__module__.rsplit('.', 1)[-1]}.{make.__name__}")
    sections.append(make(study))
  text = report.page(sections, command, study.seeds, time.perf_counter() - start,
                     runs.trained, quick, "plots", runs.compute_seconds(),
                     {} if quick else notes, runs.machines(),
                     [k for k in SECTIONS if k not in only])
  return report.write(workdir, text, "" if quick else docs)

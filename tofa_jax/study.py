"""CLI: the reproduction study at small scale (issue 16).

  python -m tofa_jax.study --config=configs/study.py --workdir=DIR [--quick]

Trains every arm for every seed of `study.seeds` (resuming what an earlier invocation
left), runs the palettes and fine-tunings the comparisons need, and writes
DIR/results.md with its plots in DIR/plots/. A full run also rewrites docs/results.md
(`--docs`); `--quick` is a pipeline check (one seed, a few steps, a tiny space).
`--kept=docs/results/kept` reads back (and adds to) the results behind docs/results.md:
small JSON files, so a study longer than one machine's session goes on elsewhere.
What each table compares: `tofa_jax/reproduce/` and docs/results.md.
"""

from __future__ import annotations

import shlex
import sys

from tofa_jax.reproduce import study
from tofa_jax.runtime import termination


def main(argv: list[str]) -> None:
  from absl import flags, logging

  logging.set_verbosity(logging.WARNING)  # orbax logs every file at INFO
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  f = flags.FLAGS
  command = "python -m tofa_jax.study " + " ".join(shlex.quote(a) for a in sys.argv[1:])
  try:
    written = study.run(f.config, f.workdir, f.quick, command, f.docs, f.checks,
                        kept=f.kept, only=f.only)
  except termination.Terminated as e:
    termination.exit_now(str(e), termination.EXIT_SIGTERM)
  except ValueError as e:
    sys.exit(f"error: {e}")
  print("wrote " + ", ".join(written))


if __name__ == "__main__":
  from absl import flags

  from tofa_jax.config import flag_errors

  flag_errors.define_config_file("config", "configs/study.py", "the study's config")
  flags.DEFINE_string("workdir", None, "where the runs, tables and plots go")
  flags.DEFINE_string("kept", "", "where the results the tables read are kept (small JSON "
                      "files; default: --workdir); docs/results/kept holds the full study's")
  flags.DEFINE_list("only", [], "these sections alone (keys: table3, table4, selection, "
                    "rss_schemes, rss_bias, regnas_rewards, regnas_finetune, palette_vs_alone); "
                    "the page says which it leaves out")
  flags.DEFINE_bool("quick", False, "a pipeline check: one seed, a few steps, a tiny space")
  flags.DEFINE_string("docs", "docs/results.md", "a full run also writes this page ('' = no)")
  flags.DEFINE_string("checks", "docs/results_checks.md",
                      "what was checked per section (hand-written; a full run's page quotes it)")
  flags.mark_flags_as_required(["workdir"])
  flag_errors.run(main)

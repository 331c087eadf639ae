"""CLI: a palette of ready models from one trained supernet, one per budget.

  python -m tofa_jax.palette --workdir=DIR [--config=FILE] [--config.palette.budgets=...]
      [--config.palette.name=NAME]

Without --config the run's own `DIR/config.json` is used (overrides still
apply). It writes DIR/palettes/NAME/ (by default NAME is METHOD-METRIC-BUDGETS),
replacing only a palette of the same name, and only once it has finished. What it
does and writes: `search/palette.py` and docs/palette.md.
"""

from __future__ import annotations

import sys

from tofa_jax.config import validate
from tofa_jax.search.palette import run
from tofa_jax.search.palette_store import palette_dir


def main(argv: list[str]) -> None:
  from absl import flags, logging

  logging.set_verbosity(logging.WARNING)  # orbax logs every file at INFO
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  config = flags.FLAGS.config
  try:
    validate.palette(config)  # every key, before the checkpoint and data load
    report = run(config, flags.FLAGS.workdir)
  except ValueError as e:
    sys.exit(f"error: {e}")
  out = palette_dir(flags.FLAGS.workdir, report["name"])
  print(f"{'member':>6} {'budget':>9} {'MFLOPs':>8} {'Mparams':>8} {'ms(b=1)':>8} "
        f"{'top-1':>7} {'NFR<-':>6}  note")
  for r in report["models"]:
    nfr = "" if r["nfr_from_smaller"] is None else f"{100 * r['nfr_from_smaller']:.2f}%"
    note = ", ".join(([f"same subnet as member {r['duplicate_of']}"]
                      if r.get("duplicate_of") is not None else []) +
                     (["fallback: its size range is empty"] if r.get("fallback") else []))
    print(f"{r['member']:>6} {r['budget']:>9.4g} {r['mflops']:>8.1f} {r['params_m']:>8.3f} "
          f"{r['latency_ms']['1']:>8.2f} {100 * r['top1']:>6.2f}% {nfr:>6}  {note}".rstrip())
  for m in report["missing"]:
    print(f"budget {m['budget']:.4g}: no model ({m['why']})")
  print(f"wrote {out}/palette.json, palette.csv and plots")


def _argv_with_config(argv: list[str]) -> list[str]:
  """Adds --config=<saved_config.py>:WORKDIR when no --config is given."""
  if any(a == "--config" or a.startswith("--config=") for a in argv):
    return argv
  workdir = next((a.split("=", 1)[1] for a in argv if a.startswith("--workdir=")), None)
  if workdir is None and "--workdir" in argv[:-1]:
    workdir = argv[argv.index("--workdir") + 1]
  if workdir is None:
    return argv
  from tofa_jax.runtime import saved_config

  return [argv[0], f"--config={saved_config.__file__}:{workdir}", *argv[1:]]


if __name__ == "__main__":
  from absl import flags
  from ml_collections import config_flags

  from tofa_jax.config import flag_errors

  config_flags.DEFINE_config_file("config", None, "config file (default: the run's "
                                  "WORKDIR/config.json)", lock_config=True)
  flags.DEFINE_string("workdir", None, "the training run's workdir")
  flags.mark_flags_as_required(["workdir"])
  flag_errors.run(main, argv=_argv_with_config(sys.argv))

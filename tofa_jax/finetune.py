"""CLI: fine-tune one palette member with cross-entropy or Focal Distillation (REG-NAS 4.4).

  python -m tofa_jax.finetune --workdir=DIR [--palette=NAME] --member=2 --loss=fd
  python -m tofa_jax.finetune --palette=DIR/palettes/NAME --member=2 --loss=ce --steps=500

--palette is a palette's name in --workdir (default: the newest there), its folder
or its palette.json. It prints Top-1 and NFR (against --reference, by default the
next smaller member) before and after, and writes report.json and the fine-tuned
member to --out (default DIR/palettes/NAME/finetune/member_XX_<loss>/). What it
does: `search/finetune.py` and docs/palette.md.
"""

from __future__ import annotations

import sys

from tofa_jax.search.finetune import LOSSES, Settings, finetune
from tofa_jax.search.palette_store import find


def main(argv: list[str]) -> None:
  from absl import flags, logging

  logging.set_verbosity(logging.WARNING)  # orbax logs every file at INFO
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  f = flags.FLAGS
  try:
    if f.member is None:
      raise ValueError("--member is required: the member's index in palette.json")
    settings = Settings(loss=f.loss, reference=f.reference, steps=f.steps, lr=f.lr,
                        batch_size=f.batch_size, fd_alpha=f.fd_alpha, fd_beta=f.fd_beta,
                        fd_temperature=f.fd_temperature, fd_weight=f.fd_weight, seed=f.seed,
                        log_every=f.log_every)
    settings.check()  # before palette.json, data and models are read
    r = finetune(find(f.palette, f.workdir), f.member, settings, f.out or None)
  except ValueError as e:
    sys.exit(f"error: {e}")
  print(f"member {r['member']}, {r['loss']} for {settings.steps} steps; NFR from member "
        f"{r['reference']} (top-1 {100 * r['reference_top1']:.2f}%)")
  print(f"{'':>7} {'top-1':>7} {'NFR':>6}")
  for when in ("before", "after"):
    print(f"{when:>7} {100 * r[when]['top1']:>6.2f}% {100 * r[when]['nfr']:>5.2f}%")
  print(f"wrote {r['model_dir']} and report.json beside it")


def _define_flags() -> None:
  from absl import flags

  d = Settings()
  flags.DEFINE_string("palette", "", "a palette's name in --workdir, its folder "
                      "(WORKDIR/palettes/NAME) or its palette.json")
  flags.DEFINE_string("workdir", "", "the run's workdir: --palette names one of its "
                      "palettes (default: the newest)")
  flags.DEFINE_integer("member", None, "the member to fine-tune (its index in palette.json)")
  flags.DEFINE_string("loss", d.loss, f"one of {'|'.join(LOSSES)}: cross-entropy, or CE + "
                      "Focal Distillation (FD-KD) against the reference")
  flags.DEFINE_integer("reference", None, "the member NFR is measured from and FD distils "
                       "(default: the next smaller member, member - 1)")
  flags.DEFINE_integer("steps", d.steps, "training steps")
  flags.DEFINE_float("lr", None, "peak learning rate of the cosine schedule (default: the "
                     "run's optim.lr)")
  flags.DEFINE_integer("batch_size", None, "batch size (default: the run's train.batch_size)")
  flags.DEFINE_float("fd_alpha", d.fd_alpha, "FD: weight of every sample")
  flags.DEFINE_float("fd_beta", d.fd_beta, "FD: extra weight of samples the reference gets "
                     "right")
  flags.DEFINE_float("fd_temperature", d.fd_temperature, "FD: KL temperature T")
  flags.DEFINE_float("fd_weight", d.fd_weight, "FD: lambda in CE + lambda * FD")
  flags.DEFINE_integer("seed", d.seed, "augmentation and data-order seed")
  flags.DEFINE_integer("log_every", d.log_every, "steps between progress lines")
  flags.DEFINE_string("out", "", "output directory (default: WORKDIR/palettes/NAME/finetune/"
                      "member_XX_<loss>)")


if __name__ == "__main__":
  from absl import app

  _define_flags()
  app.run(main)

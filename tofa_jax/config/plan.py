"""`describe(config)`: one paragraph saying what a training run will do, printed before
it starts (space, data, steps, batches, resolutions, loss, sampling, cadence).

It reads the config only (and the cheap class count of `facts`); call it after
`validate.training`, which guarantees the values it formats.
"""

from __future__ import annotations

from typing import Any

from tofa_jax.config import consistency, facts
from tofa_jax.config.rules import num
from tofa_jax.config.schema import get
from tofa_jax.train import epochs, losses, schemes
from tofa_jax.weights import named_starts


def _px(values) -> str:
  return ", ".join(str(v) for v in values) + " px"


def _data(config: Any) -> str:
  d = get(config, "data", {})
  name = d.get("name", "")
  source = f"folder {d.get('folder')}" if name == "folder" else name
  classes = facts.num_classes(d)
  text = f"on {source}" + (f" ({classes} classes)" if classes else "")
  n, fully = d.get("num_labelled", 0), d.get("fully_labelled", False)
  held = d.get("val_fraction", 0.0)
  pool = f"the {d.get('train_split') or 'train'!r} split"
  if held:
    pool += f" less {100 * held:g}% held out for the palette"
  if fully or n == 0:
    text += f": every image of {pool} labelled"
  else:
    text += f": {n} labelled images of {pool}, drawn class-balanced"
    if not d.get("unlabelled_folder"):
      text += ", the rest unlabelled"
  if d.get("unlabelled_folder"):
    text += f"; unlabelled images from {d.get('unlabelled_folder')}"
  return text


def _every(n: int) -> str:
  return "every step" if n == 1 else f"every {n} steps"


def _cadence(every: int, what: str, total: int) -> str:
  if every and every < total:
    return f"{what} {_every(every)} and at the end"
  return f"{what} at the end"


def _loss(variant: str, teacher: bool, loss: Any) -> str:
  """The loss terms (train/losses.py); only the sandwich has a teacher to distil from."""
  fm, dist = losses.terms(variant)
  terms = ["labelled CE"] + ["FixMatch"] * fm
  details = [f"threshold {num(loss.get('threshold'))}"] * fm
  details.append(f"label smoothing {num(loss.get('label_smoothing'))}")
  if teacher:
    terms.append(f"distillation on labelled{' and unlabelled' * dist} images")
    details.append(f"KD temperature {num(loss.get('temperature'))}, beta "
                   f"{num(loss.get('beta'))}")
  return f"loss {variant!r} ({', '.join(terms)}; {', '.join(details)})"


def _start(init: Any) -> str:
  name = init.get("checkpoint")
  if name == named_starts.RANDOM:
    return "Starts from random weights (init.checkpoint='random')"
  if name in named_starts.NAMED:
    return f"Starts from {name} ({named_starts.NAMED[name].network})"
  return f"Starts from {name}" + (f" ({init.get('format')})" if init.get("format") else "")


_BIAS = {"single_min": "the min subnet only", "single_mid": "the middle subnet only (the "
          "middle choice of every dimension)", "single_median": "the median-cost subnet only "
          "(nearest the middle of the MFLOPs range)", "single_max": "the max subnet only",
          "min_then_max": "the min subnet for the first half of the epochs, then the max",
          "max_then_min": "the max subnet for the first half of the epochs, then the min",
          "alternating": "the min subnet on even epochs and the max on odd ones"}


def _pct(f: float) -> str:
  return f"{100 * f:g}%"


def _subnets(t: Any, sp: Any, variant: str) -> str:
  """What each step trains (train/schemes.py)."""
  scheme = t.get("sampling", "sandwich")
  if t.get("mode", "supernet") == "single":
    arch = t.get("arch", "max")
    res = schemes.fixed_arch(sp, arch).resolution
    what = "FixMatch" if losses.terms(variant)[0] else "Baseline"
    return (f"one fixed network, train.arch={arch!r} at {res} px (train.mode='single', "
            f"TOFA Table 3's {what})")
  if scheme == "sandwich":
    k = t.get("num_random", 2)
    return (f"the max subnet (at {max(sp.resolutions)} px), the min subnet (at "
            f"{min(sp.resolutions)} px) and {k} random subnet{'s' * (k != 1)}")
  if scheme in ("rss_batch", "rss_epoch"):
    per = "step" if scheme == "rss_batch" else "epoch"
    return f"one random subnet drawn per {per} (RSS, {scheme})"
  if scheme == "progressive_shrinking":
    f, n = t.get("ps_phases", (0.25,) * 4), t.get("ps_subnets", (1, 1, 2, 4))
    return (f"by progressive shrinking (OFA, RSS 4.1): the max network for the first "
            f"{_pct(f[0])} of the steps, then {n[1]} subnet{'s' * (n[1] != 1)} with elastic "
            f"kernel ({_pct(f[1])}), {n[2]} with elastic kernel and depth ({_pct(f[2])}), "
            f"{n[3]} with every dimension elastic ({_pct(f[3])}), each step's subnets at one "
            "resolution drawn per step")
  return f"{_BIAS[scheme]} (RSS 6.3.2, {scheme})"


def describe(config: Any) -> str:
  """What the run will do, in one paragraph (no trailing newline)."""
  sp = consistency.space(config)
  t, loss = get(config, "train", {}), get(config, "loss", {})
  variant = loss.get("variant", "tofa")
  unlabelled = consistency.uses_unlabelled(config)
  size = get(config, "data.image_size") or max(sp.resolutions)
  parts = [f"Trains space {sp.name!r} at {_px(sp.resolutions)} {_data(config)}."]
  batch = f"{t.get('batch_size')} labelled" + (
      f" + {t.get('unlabelled_batch_size')} unlabelled" if unlabelled else "")
  total = int(t.get("steps", 0))
  parts.append(f"{total} steps of {batch} images (global batch), loaded at {size} px.")
  scheme = t.get("sampling", "sandwich")
  single = t.get("mode", "supernet") == "single"
  subnets = _subnets(t, sp, variant)
  if sp.mflops_window and scheme in schemes.WINDOWED and not single:
    subnets += f", random ones within {num(sp.mflops_window[0])}-{num(sp.mflops_window[1])} MFLOPs"
  teacher = scheme == "sandwich" and not single
  parts.append(f"Each step trains {subnets}, with {_loss(variant, teacher, loss)}.")
  start = _start(get(config, "init", {}))
  o = get(config, "optim", {})
  key, warmup = epochs.warmup_form(o)
  unit = "step" if key == "optim.warmup_steps" else "epoch"
  decay = "a constant lr" if o.get("schedule", "cosine") == "constant" else "cosine decay"
  parts.append(f"{start}; SGD lr {num(o.get('lr'))}, momentum {num(o.get('momentum'))}, "
               f"{num(warmup)} warm-up {unit}{'s' * (warmup != 1)}, then {decay}.")
  names = tuple(get(config, "evals.subnets", ()))
  if single and names:
    names = (t.get("arch", "max"),)
  names = ", ".join(names) or "no subnets"
  cadence = [_cadence(t.get("checkpoint_every", 0), "Checkpoints", total),
             _cadence(t.get("eval_every", 0), f"evaluates {names}", total),
             f"logs {_every(t.get('log_every'))}"]
  stop = t.get("stop_after_steps", -1)
  if stop != -1 and stop < total:
    cadence.append(f"stops after step {stop} (resume with the same command)")
  parts.append("; ".join(cadence) + ".")
  return " ".join(parts)

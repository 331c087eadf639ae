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
from tofa_jax.train import losses


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


def _loss(variant: str, scheme: str, loss: Any) -> str:
  """The loss terms (train/losses.py); RSS schemes have no teacher to distil from."""
  fm, dist = losses.terms(variant)
  terms = ["labelled CE"] + ["FixMatch"] * fm
  details = [f"threshold {num(loss.get('threshold'))}"] * fm
  details.append(f"label smoothing {num(loss.get('label_smoothing'))}")
  if scheme == "sandwich":
    terms.append(f"distillation on labelled{' and unlabelled' * dist} images")
    details.append(f"KD temperature {num(loss.get('temperature'))}, beta "
                   f"{num(loss.get('beta'))}")
  return f"loss {variant!r} ({', '.join(terms)}; {', '.join(details)})"


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
  if scheme == "sandwich":
    k = t.get("num_random", 2)
    subnets = (f"the max subnet (at {max(sp.resolutions)} px), the min subnet (at "
               f"{min(sp.resolutions)} px) and {k} random subnet{'s' * (k != 1)}")
  else:
    per = "step" if scheme == "rss_batch" else "epoch"
    subnets = f"one random subnet drawn per {per} (RSS, {scheme})"
  if sp.mflops_window:
    subnets += f", random ones within {num(sp.mflops_window[0])}-{num(sp.mflops_window[1])} MFLOPs"
  parts.append(f"Each step trains {subnets}, with {_loss(variant, scheme, loss)}.")
  init = get(config, "init", {})
  start = (f"Starts from {init.get('checkpoint')}" +
           (f" ({init.get('format')})" if init.get("format") else "")
           if init.get("checkpoint") else "Starts from random weights")
  o = get(config, "optim", {})
  warmup = o.get("warmup_epochs", 0)
  parts.append(f"{start}; SGD lr {num(o.get('lr'))}, momentum {num(o.get('momentum'))}, "
               f"{num(warmup)} warm-up epoch{'s' * (warmup != 1)}, then cosine decay.")
  names = ", ".join(get(config, "evals.subnets", ())) or "no subnets"
  cadence = [_cadence(t.get("checkpoint_every", 0), "Checkpoints", total),
             _cadence(t.get("eval_every", 0), f"evaluates {names}", total),
             f"logs {_every(t.get('log_every'))}"]
  stop = t.get("stop_after_steps", -1)
  if stop != -1 and stop < total:
    cadence.append(f"stops after step {stop} (resume with the same command)")
  parts.append("; ".join(cadence) + ".")
  return " ".join(parts)

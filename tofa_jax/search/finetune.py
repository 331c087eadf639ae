"""Fine-tuning one palette member with cross-entropy or Focal Distillation (REG-NAS 4.4).

`finetune(palette_json, member, settings)` is what `python -m tofa_jax.finetune` does.
The member's static model (palette.json's `export_dir`: its own weights, sliced from
the supernet, with recalibrated BN) is trained on the run's labelled training data
(the run's `config.json`: dataset, labelled split, weak augmentation, batch size,
momentum and weight decay), with SGD + momentum and a cosine decay from `lr` to 0 (no
warm-up: the weights are trained already), BN in train mode. The loss is

  ce  CE(y, z)
  fd  CE(y, z) + weight * FD-KD(z, z_ref, y)   (`train.losses.focal_distillation`)

where z_ref is the reference member's logits on the same augmented batch (frozen, BN
in eval mode). Top-1 on the test split and NFR(reference -> member) are measured
before and after, exactly as the palette measures them, so "before" equals the
palette's recorded figures. Outputs, in `out` (default PALETTE_DIR/finetune/
member_XX_<loss>/): report.json and model/, the fine-tuned member as a sealed static
model (`python -m tofa_jax.predict --params=.../model`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tofa_jax.data import augment, input_pipeline, loading
from tofa_jax.runtime import progress, saved_config
from tofa_jax.search import palette_report, regression
from tofa_jax.search.subnet_eval import stacked_split
from tofa_jax.train import losses, optim
from tofa_jax.weights import export, stored_dir

LOSSES = ("ce", "fd")
MODEL_DIR = "model"
REPORT_FILE = "report.json"


@dataclasses.dataclass(frozen=True)
class Settings:
  """The fine-tuning run; None means the training run's own value."""

  loss: str = "fd"
  reference: int | None = None  # None: the next smaller member (REG-NAS's consecutive pairs)
  steps: int = 1000
  lr: float | None = None  # peak of the cosine schedule; None: the run's optim.lr
  batch_size: int | None = None  # None: the run's train.batch_size
  fd_alpha: float = 1.0  # FD weight of every sample (Yan et al.'s alpha)
  fd_beta: float = 5.0  # extra weight where the reference is right (beta)
  fd_temperature: float = 100.0  # T
  fd_weight: float = 1.0  # lambda: CE + lambda * FD
  seed: int = 0
  log_every: int = 50

  def check(self) -> None:
    if self.loss not in LOSSES:
      raise ValueError(f"--loss={self.loss!r} is unknown; choose one of {list(LOSSES)}")
    for name, low in (("steps", 1), ("log_every", 1), ("batch_size", 1)):
      value = getattr(self, name)
      if value is not None and value < low:
        raise ValueError(f"--{name}={value}; use at least {low}")
    for name in ("lr", "fd_temperature"):
      value = getattr(self, name)
      if value is not None and not value > 0:
        raise ValueError(f"--{name}={value}; use a positive number")
    for name in ("fd_alpha", "fd_beta", "fd_weight"):
      if not getattr(self, name) >= 0:
        raise ValueError(f"--{name}={getattr(self, name)}; use a number >= 0")


def read_palette(palette_json: str) -> tuple[dict, list[dict]]:
  """(palette.json's content, its members); one-line errors name --palette."""
  report, members = palette_report.read(palette_json)
  if not members:
    raise ValueError(f"--palette={palette_json}: the palette has no members")
  return report, members


def pick(members: list[dict], member: int, reference: int | None) -> tuple[int, int]:
  """(member, reference) indices, checked; the reference defaults to member - 1."""
  allowed = list(range(len(members)))
  if member not in allowed:
    raise ValueError(f"--member={member} is out of range; the palette's members are {allowed}")
  if reference is None:
    if member == 0:
      raise ValueError(f"--member=0 is the smallest member, with no smaller one to compare "
                       f"with; pass --reference=INDEX, one of {allowed[1:]}")
    reference = member - 1
  others = [i for i in allowed if i != member]
  if reference not in others:
    raise ValueError(f"--reference={reference} is not another member; choose one of {others}")
  for i in (member, reference):
    d = members[i].get("export_dir")
    if not d or not os.path.isdir(d):
      raise ValueError(f"--member/--reference: member {i} has no static model directory "
                       f"({d!r}); run the palette with palette.export=True")
  return member, reference


@functools.partial(jax.jit, static_argnums=0)
def _predict(model, variables, images, mean, std):
  """Class indices of (n, B, S, S, 3) uint8 images, eval-mode BN (the palette's preprocessing)."""
  def body(_, x):
    logits = model.apply(variables, augment.normalize(augment.to_float(x), mean, std))
    return None, jnp.argmax(logits, -1).astype(jnp.int32)

  return jax.lax.scan(body, None, images)[1]


class _TestSplit:
  """The run's test split, stacked once per resolution as the palette's evaluator does."""

  def __init__(self, source, batch: int):
    self.source, self.batch, self._at = source, batch, {}
    self.labels: np.ndarray | None = None

  def predictions(self, static: export.StaticModel, variables: dict) -> np.ndarray:
    r = static.arch.resolution
    if r not in self._at:
      images, labels, mask = stacked_split(self.source, np.arange(len(self.source)), r,
                                           self.batch)
      self.labels = labels[mask > 0]
      self._at[r] = (jnp.asarray(images), mask > 0)
    images, keep = self._at[r]
    preds = _predict(static.model, variables, images, np.asarray(static.mean, np.float32),
                     np.asarray(static.std, np.float32))
    return np.asarray(preds).reshape(-1)[keep]


def _train_step(model, ref_model, tx, aug: augment.AugmentConfig, s: Settings,
                mean, std, ref_mean, ref_std):
  """The jitted step: (params, batch_stats, opt_state), ref_variables, images, labels,
  step -> (new state, metrics). The augmentation key is fold_in(seed, step)."""
  key0 = jax.random.key(s.seed)

  def step(state, ref_variables, images, labels, i):
    params, stats, opt_state = state
    x01 = augment.weak(jax.random.fold_in(key0, i), images, aug)
    x = augment.normalize(x01, mean, std)
    ref_logits = None
    if s.loss == "fd":  # the reference sees the same augmented images, in its own BN state
      ref_logits = jax.lax.stop_gradient(
          ref_model.apply(ref_variables, augment.normalize(x01, ref_mean, ref_std)))

    def loss_fn(p):
      logits, new = model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                mutable=["batch_stats"])
      ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
      fd = (losses.focal_distillation(logits, ref_logits, labels, alpha=s.fd_alpha,
                                      beta=s.fd_beta, temperature=s.fd_temperature)
            if ref_logits is not None else jnp.zeros(()))
      return ce + s.fd_weight * fd, (new["batch_stats"], ce, fd)

    (loss, (stats, ce, fd)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return ((optax.apply_updates(params, updates), stats, opt_state),
            {"loss": loss, "ce": ce, "fd": fd})

  return jax.jit(step, donate_argnums=0)


def _default_out(palette_json: str, member: int, loss: str) -> str:
  return os.path.join(os.path.dirname(os.path.abspath(palette_json)), "finetune",
                      f"member_{member:02d}_{loss}")


def finetune(palette_json: str, member: int, s: Settings | None = None, out: str | None = None,
             log=print) -> dict[str, Any]:
  """Fine-tunes palette member `member`; writes and returns the report (see module doc)."""
  s = s or Settings()
  s.check()
  if jax.process_count() > 1:
    raise ValueError("fine-tuning runs in one process; start it on one host")
  report, members = read_palette(palette_json)
  member, ref_index = pick(members, member, s.reference)
  out = os.path.abspath(out or _default_out(palette_json, member, s.loss))
  if os.path.exists(os.path.join(out, MODEL_DIR)):
    raise ValueError(f"--out={out} holds a fine-tuned model already; choose a new directory")
  try:
    config = saved_config.get_config(report.get("workdir", ""))
  except ValueError as e:
    raise ValueError(f"--palette={palette_json}: its run's config cannot be read ({e})") from None
  static, ref = (export.load(members[i]["export_dir"]) for i in (member, ref_index))
  data = loading.load_data(config)
  test = _TestSplit(data.test, int(config.evals.batch_size))

  ref_pred = test.predictions(ref, ref.variables)

  def measure(variables) -> dict[str, float]:
    pred = test.predictions(static, variables)
    return {"top1": regression.top1(pred, test.labels),
            "nfr": regression.nfr(ref_pred, pred, test.labels)}

  before = measure(static.variables)
  log(f"finetune: member {member} against member {ref_index}: top-1 {before['top1']:.4f}, "
      f"NFR {before['nfr']:.4f} before")

  batch = int(s.batch_size or config.train.batch_size)
  lr = float(s.lr if s.lr is not None else config.optim.lr)
  pool = data.labelled_idx
  steps_per_epoch = max(1, len(pool) // batch)
  # The run's momentum and weight decay; cosine from lr with no warm-up (trained weights).
  tx, _ = optim.make(dict(config.optim.to_dict(), lr=lr, warmup_epochs=-1, warmup_steps=0,
                          schedule="cosine"), steps_per_epoch, s.steps)
  aug_keys = {f.name for f in dataclasses.fields(augment.AugmentConfig)}
  aug = augment.AugmentConfig(**{k: v for k, v in config.augment.items() if k in aug_keys})
  f32 = lambda v: np.asarray(v, np.float32)  # noqa: E731
  step = _train_step(static.model, ref.model, tx, aug, s, f32(static.mean), f32(static.std),
                     f32(ref.mean), f32(ref.std))
  params = jax.tree.map(jnp.asarray, static.variables["params"])
  state = (params, jax.tree.map(jnp.asarray, static.variables["batch_stats"]), tx.init(params))
  ref_variables = jax.tree.map(jnp.asarray, ref.variables)
  stream = input_pipeline.train_stream(data.train, pool, batch, static.arch.resolution,
                                       int(config.seed) + s.seed,
                                       threads=int(config.data.get("threads", 4)))
  t0 = time.perf_counter()
  prog, last = None, {}
  for i in range(s.steps):
    b = next(stream)
    state, metrics = step(state, ref_variables, b["image"], b["label"], i)
    if i == 0:  # the first step compiles; the rate counts the steps after it
      jax.block_until_ready(state)
      prog = progress.Progress(s.steps, done=1)  # the rate counts the steps after it
      log(f"finetune: compiled and ran the first step in {prog.start - t0:.1f} s")
    if (i + 1) % s.log_every == 0 or i + 1 == s.steps:  # metrics reach the host only here
      last = {k: float(v) for k, v in metrics.items()}
      if not math.isfinite(last["loss"]):
        raise ValueError(f"the loss is not finite at step {i + 1} ({last}); lower --lr")
      rate = prog.since_start(i + 1)
      eta = "?" if rate.left_s is None else f"{rate.left_s:.0f} s"
      log(f"finetune: step {i + 1}/{s.steps}, loss {last['loss']:.4f} (ce {last['ce']:.4f}, "
          f"fd {last['fd']:.4f}), {rate.per_s:.2f} steps/s, ETA {eta}")
  seconds = time.perf_counter() - t0
  variables = {"params": state[0], "batch_stats": state[1]}
  after = measure(variables)

  result = {
      "palette": os.path.abspath(palette_json), "workdir": report.get("workdir"),
      "member": member, "reference": ref_index,
      "arch": members[member]["arch"], "reference_arch": members[ref_index]["arch"],
      "loss": s.loss, "settings": {**dataclasses.asdict(s), "reference": ref_index, "lr": lr,
                                   "batch_size": batch, "momentum": config.optim.momentum,
                                   "weight_decay": config.optim.weight_decay},
      "train_examples": int(len(pool)), "test_examples": int(len(test.labels)),
      "reference_top1": regression.top1(ref_pred, test.labels),
      "recorded": {"top1": members[member].get("top1"),
                   "nfr": _recorded_nfr(report, ref_index, member)},
      "before": before, "after": after, "final_metrics": last, "seconds": seconds,
      "model_dir": os.path.join(out, MODEL_DIR),
  }
  stored_dir.write(result["model_dir"], variables, {
      "kind": export.KIND, "space": dataclasses.asdict(static.space),
      "arch": static.arch.to_dict(per_layer=True), "num_classes": static.num_classes,
      "mean": list(static.mean), "std": list(static.std),
      **export.meta_names(static.class_names, static.num_classes),
      "preprocess": static.preprocess or dict(export.PALETTE_PREPROCESS),
      "info": {**static.info, "finetune": {k: result[k] for k in (
          "palette", "member", "reference", "loss", "settings", "before", "after")}}})
  tmp = os.path.join(out, f"{REPORT_FILE}.tmp")  # a crash mid-write leaves no half report
  with open(tmp, "w") as f:
    json.dump(result, f, indent=1)
  os.replace(tmp, os.path.join(out, REPORT_FILE))
  return result


def _recorded_nfr(report: dict, reference: int, member: int) -> float | None:
  matrix = report.get("nfr_matrix") or []
  try:
    return float(matrix[reference][member])
  except (IndexError, TypeError):
    return None

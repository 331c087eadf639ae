"""TOFA's loss terms (section 3.2) as pure functions of logits.

- `labelled`: L^lab_max, label-smoothed cross-entropy of the max subnet on weakly
  augmented labelled images.
- `fixmatch`: L^FM, the max subnet's argmax on the weak view of an unlabelled
  image is its pseudo-label when the max probability exceeds the threshold;
  the loss is label-smoothed cross-entropy on the strong view.
- `distill`: L^dist_sub, a subnet's cross-entropy against the max subnet's soft
  predictions (AlphaNet eq. 8: temperature T, scaled by T^2). Soft-target
  cross-entropy and KL differ by the teacher's entropy, a constant for the
  student, so gradients equal those of the KL form.
- `focal_distillation`: REG-NAS section 4.4's FD-KD (Yan et al. 2021), for fine-tuning
  a palette member against a reference member (`search/finetune.py`).

Every function returns the mean over the batch (FixMatch: over all unlabelled
images, masked ones counting zero, as in FixMatch) and takes teacher logits
that the caller has passed through `jax.lax.stop_gradient`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

Array = jax.Array

VARIANTS = ("lab", "fm", "dist", "tofa")  # Table 4's columns


def smoothed_ce(logits: Array, labels: Array, alpha: float) -> Array:
  """Per-example cross-entropy against one-hot labels smoothed by `alpha`."""
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), alpha)
  return optax.softmax_cross_entropy(logits, targets)


def labelled(logits: Array, labels: Array, alpha: float) -> Array:
  return jnp.mean(smoothed_ce(logits, labels, alpha))


def fixmatch(weak_logits: Array, strong_logits: Array, threshold: float, alpha: float
             ) -> tuple[Array, Array, Array]:
  """(loss, mask, pseudo_labels). `weak_logits` must carry no gradient."""
  probs = jax.nn.softmax(weak_logits)
  pseudo = jnp.argmax(probs, axis=-1)
  mask = (jnp.max(probs, axis=-1) > threshold).astype(strong_logits.dtype)
  loss = jnp.mean(smoothed_ce(strong_logits, pseudo, alpha) * mask)
  return loss, mask, pseudo


def soft_ce(student_logits: Array, teacher_logits: Array, temperature: float) -> Array:
  """Per-example T^2 * CE(softmax(teacher / T), log_softmax(student / T))."""
  t = temperature
  targets = jax.nn.softmax(teacher_logits / t)
  return optax.softmax_cross_entropy(student_logits / t, targets) * t * t


def distill(student_logits: Array, teacher_logits: Array, temperature: float) -> Array:
  return jnp.mean(soft_ce(student_logits, teacher_logits, temperature))


def subnet_labelled(student_logits: Array, teacher_logits: Array, labels: Array, *,
                    beta: float, temperature: float, alpha: float) -> Array:
  """A subnet's loss on labelled images, AlphaNet eq. 8:
  (1 - beta) * CE_alpha(labels) + beta * T^2 * KD. beta = 1 is TOFA's pure distillation."""
  loss = beta * distill(student_logits, teacher_logits, temperature)
  if beta < 1.0:
    loss = loss + (1.0 - beta) * labelled(student_logits, labels, alpha)
  return loss


def terms(variant: str) -> tuple[bool, bool]:
  """(FixMatch on unlabelled data, distillation on unlabelled data) for a variant.

  `lab` = L^lab (max CE + subnet distillation on labelled data), `fm` adds L^FM,
  `dist` adds L^dist on unlabelled data, `tofa` adds both (eq. 4).
  """
  if variant not in VARIANTS:
    raise ValueError(f"loss.variant={variant!r} is unknown; choose one of {list(VARIANTS)}")
  return variant in ("fm", "tofa"), variant in ("dist", "tofa")


def focal_distillation(student_logits: Array, reference_logits: Array, labels: Array, *,
                       alpha: float, beta: float, temperature: float) -> Array:
  """Focal Distillation, FD-KD of Yan et al. 2021 (positive-congruent training), as used
  by REG-NAS section 4.4: the batch mean of

    w_i * T^2 * KL(softmax(z_ref_i / T) || softmax(z_i / T)),
    w_i = alpha + beta * 1[argmax z_ref_i == y_i],

  so samples the reference gets right weigh 1 + beta/alpha times as much: the student
  is pulled hardest where a negative flip could occur. alpha=1, beta=0 is plain KD.
  `reference_logits` must carry no gradient.
  """
  t = temperature
  ref_log_p = jax.nn.log_softmax(reference_logits / t)
  kl = jnp.sum(jnp.exp(ref_log_p) * (ref_log_p - jax.nn.log_softmax(student_logits / t)), -1)
  right = (jnp.argmax(reference_logits, -1) == labels).astype(kl.dtype)
  return jnp.mean((alpha + beta * right) * kl * t * t)

"""AutoAugment's ImageNet policy, on device: TOFA's strong augmentation (TOFA 4.2).

TOFA 4.2: "For stronger data augmentation, we use AutoAugment function from
torchvision library in addition to the weak augmentation techniques", that is
`torchvision.transforms.AutoAugment()`, whose default policy is ImageNet's with
10 magnitude bins, nearest-neighbour resampling and black fill. The table and
magnitudes below are torchvision's (pytorch/vision,
torchvision/transforms/autoaugment.py: `AutoAugment._get_policies` and
`_augmentation_space`), themselves the AutoAugment paper's (Cubuk et al. 2019).

Per image: one of the 25 sub-policies, uniformly; each of its two ops applies
with its probability (uniform draw <= p), at its bin's magnitude; a signed op
(rotate, shear, the enhance factors) gets a random sign with p = 0.5. The ops are
PIL's, written in jnp (`pil_ops.py`); the whole thing is a pure function of
(key, image), vmapped by `augment.strong`.

Only the ops this policy draws are here. torchvision's table also has Brightness,
ShearY and TranslateX/Y, which the ImageNet policy never uses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tofa_jax.data import pil_ops

Array = jax.Array

NUM_BINS = 10


def _bins(lo: float, hi: float) -> np.ndarray:
  return np.linspace(lo, hi, NUM_BINS)


# op -> (its magnitude per bin, signed). Enhance factors are 1 + magnitude; the
# solarize threshold is on [0, 1] (torchvision: 255 -> 0 on uint8); posterize keeps
# 8 - round(bin / 2.25) bits; the last three take no magnitude.
OPS: dict[str, tuple[np.ndarray, bool]] = {
    "ShearX": (_bins(0.0, 0.3), True),
    "Rotate": (_bins(0.0, 30.0), True),  # degrees
    "Color": (_bins(0.0, 0.9), True),
    "Contrast": (_bins(0.0, 0.9), True),
    "Sharpness": (_bins(0.0, 0.9), True),
    "Posterize": (8 - np.round(np.arange(NUM_BINS) / ((NUM_BINS - 1) / 4)), False),
    "Solarize": (_bins(1.0, 0.0), False),
    "AutoContrast": (np.zeros(NUM_BINS), False),
    "Equalize": (np.zeros(NUM_BINS), False),
    "Invert": (np.zeros(NUM_BINS), False),
}

# The ImageNet policy: 25 sub-policies of two (op, probability, magnitude bin).
# Transcribed from torchvision's AutoAugment._get_policies(IMAGENET); the bin is
# None for ops without a magnitude. It repeats some sub-policies, as torchvision's
# does, which weights them twice.
Policy = tuple[tuple[tuple[str, float, int | None], ...], ...]
IMAGENET_POLICY: Policy = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
    (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
    (("Color", 0.4, 0), ("Equalize", 0.6, None)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
)

# One function per OPS entry, in its order: (image, signed magnitude) -> image.
_APPLY = {
    "ShearX": pil_ops.shear_x,
    "Rotate": pil_ops.rotate,
    "Color": lambda x, m: pil_ops.color(x, 1.0 + m),
    "Contrast": lambda x, m: pil_ops.contrast(x, 1.0 + m),
    "Sharpness": lambda x, m: pil_ops.sharpness(x, 1.0 + m),
    "Posterize": pil_ops.posterize,
    "Solarize": pil_ops.solarize,
    "AutoContrast": lambda x, m: pil_ops.autocontrast(x),
    "Equalize": lambda x, m: pil_ops.equalize(x),
    "Invert": lambda x, m: pil_ops.invert(x),
}
_BRANCHES = tuple(_APPLY[name] for name in OPS)


def apply_op(name: str, img: Array, magnitude: Array) -> Array:
  """One named op at a (signed) magnitude, as the policy applies it."""
  return _APPLY[name](img, magnitude)


def policy_arrays(policy: Policy = IMAGENET_POLICY) -> tuple[np.ndarray, ...]:
  """The policy as arrays (S, 2): op index into OPS, probability, magnitude, signed."""
  names = list(OPS)
  index, prob, magnitude, signed = (np.zeros((len(policy), 2)) for _ in range(4))
  for s, sub in enumerate(policy):
    for j, (name, p, b) in enumerate(sub):
      values, sign = OPS[name]
      index[s, j], prob[s, j], signed[s, j] = names.index(name), p, sign
      magnitude[s, j] = 0.0 if b is None else values[b]
  return (index.astype(np.int32), prob.astype(np.float32), magnitude.astype(np.float32),
          signed.astype(bool))


def autoaugment_one(key: Array, img: Array, policy: Policy = IMAGENET_POLICY) -> Array:
  """One float32 (H, W, 3) image in [0, 1] through a random sub-policy of `policy`."""
  index, prob, magnitude, signed = (jnp.asarray(a) for a in policy_arrays(policy))
  k_sub, k_apply, k_sign = jax.random.split(key, 3)
  sub = jax.random.randint(k_sub, (), 0, len(policy))
  apply = jax.random.uniform(k_apply, (2,)) <= prob[sub]
  flip = jax.random.bernoulli(k_sign, 0.5, (2,)) & signed[sub]
  for j in range(2):
    m = jnp.where(flip[j], -magnitude[sub, j], magnitude[sub, j])
    out = jax.lax.switch(index[sub, j], _BRANCHES, img, m)
    img = jnp.where(apply[j], out, img)
  return img

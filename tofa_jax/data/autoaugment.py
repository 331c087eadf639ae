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

Each image computes its drawn op, not all ten. A `lax.switch` on the drawn op
becomes, under `vmap`, a select over every branch (ten ops, two of them warps and
one a scatter histogram, per image and slot), and unbatched on a GPU it would wait
on the host. Here the ten ops are four kernels, each run once with the image's own
parameters, and the op's family selects among their outputs:
- geometric (ShearX, Rotate): one `pil_ops.warp` with the image's matrix;
- enhance (Color, Contrast, Sharpness): one blend with the image's degenerate image
  (its luma, mean luma or smoothed image) at factor 1 + m;
- lookup (Posterize, Equalize): one per-channel table over the 256 levels;
- point (Solarize, AutoContrast, Invert): one elementwise map.
Each kernel is the per-op function's arithmetic with other data, so the output
equals a switch over the per-op functions (`apply_op`) bit for bit
(tests/data/autoaugment_test.py).

Only the ops this policy draws are here. torchvision's table also has Brightness,
ShearY and TranslateX/Y, which the ImageNet policy never uses.
"""

from __future__ import annotations

import functools

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

# One function per OPS entry: (image, signed magnitude) -> image. The reference
# semantics of each op (tests/data/pil_ops_test.py checks them against PIL).
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

# The kernel each op runs in (`drawn_op`).
FAMILIES = {"geometric": ("ShearX", "Rotate"), "enhance": ("Color", "Contrast", "Sharpness"),
            "lookup": ("Posterize", "Equalize"),
            "point": ("Solarize", "AutoContrast", "Invert")}


def apply_op(name: str, img: Array, magnitude: Array) -> Array:
  """One named op at a (signed) magnitude, as the policy applies it."""
  return _APPLY[name](img, magnitude)


def drawn_op(img: Array, op: Array, m: Array) -> Array:
  """`apply_op(list(OPS)[op], img, m)` for a traced op index, computing one op per family.

  Args:
    img: float32 (H, W, C) in [0, 1].
    op: int32 scalar, an index into OPS.
    m: float32 scalar, the signed magnitude.
  """
  img, names = jnp.asarray(img), list(OPS)
  is_op = {name: op == names.index(name) for name in names}
  h, w = img.shape[:2]

  rotation, shearing = pil_ops.rotation(m, h, w), pil_ops.shearing_x(m)
  matrix, offset = (jnp.where(is_op["Rotate"], r, s) for r, s in zip(rotation, shearing,
                                                                      strict=True))
  geometric = pil_ops.warp(img, matrix, offset)

  grey = pil_ops.grey(img)
  degenerate = jnp.where(is_op["Sharpness"], pil_ops.smooth(img),
                         jnp.where(is_op["Contrast"], jnp.mean(grey), grey))
  enhanced = pil_ops.blend(jnp.broadcast_to(degenerate, img.shape), img, 1.0 + m)

  levels = pil_ops.to_levels(img)
  # Posterize's bits are its magnitude; other ops' magnitudes are no bit count.
  poster = pil_ops.posterize_lut(jnp.where(is_op["Posterize"], m, 8.0))
  # The histogram is the one cost here that only Equalize needs; it is a scatter of
  # H * W * C ones, a fraction of one warp.
  tables = jnp.stack([jnp.where(is_op["Posterize"], poster,
                                pil_ops.equalize_lut(levels[..., c]))
                      for c in range(img.shape[-1])], -1)
  looked_up = jnp.take_along_axis(tables, levels.reshape(h * w, -1), axis=0)
  looked_up = looked_up.reshape(img.shape).astype(img.dtype) / (pil_ops.LEVELS - 1)

  inverted = pil_ops.invert(img)
  point = jnp.where(is_op["Solarize"], pil_ops.solarize(img, m),
                    jnp.where(is_op["AutoContrast"], pil_ops.autocontrast(img), inverted))

  family = {name: functools.reduce(jnp.logical_or, (is_op[n] for n in ops))
            for name, ops in FAMILIES.items()}
  return jnp.where(family["geometric"], geometric,
                   jnp.where(family["enhance"], enhanced,
                             jnp.where(family["lookup"], looked_up, point)))


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
    img = jnp.where(apply[j], drawn_op(img, index[sub, j], m), img)
  return img

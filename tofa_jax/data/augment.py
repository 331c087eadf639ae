"""Weak and strong augmentation on device, inside the jitted input transform.

Images arrive as uint8 (N, H, W, 3) at the training resolution; every function
here is a pure jnp function of (key, images), vmapped per image, so it runs on
the accelerator next to the train step and never starves it.

- weak: random resized crop (area `crop_scale`, aspect `crop_ratio`), horizontal
  flip, colour jitter (brightness, contrast, saturation).
- strong, `strong="autoaugment"` (default, TOFA 4.2): weak, then torchvision's
  AutoAugment ImageNet policy (`autoaugment.py`). No Cutout: torchvision's
  AutoAugment has none and TOFA adds only AutoAugment to the weak view.
- strong, `strong="randaugment"` (FixMatch): weak, then `num_ops` RandAugment
  operations with random magnitude (FixMatch's RandAugment variant: every op draws
  its own magnitude), then a Cutout square of up to `cutout` of the side.
The colour and RandAugment ops are PIL's, in jnp (`pil_ops.py`). Outputs are
float32 in [0, 1]; `normalize` applies the checkpoint's mean/std.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from tofa_jax.data import autoaugment, pil_ops

Array = jax.Array

STRONG_POLICIES = ("autoaugment", "randaugment")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  crop_scale: tuple[float, float] = (0.35, 1.0)
  crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
  flip: bool = True
  jitter: float = 0.4
  num_ops: int = 2  # randaugment only
  cutout: float = 0.5  # randaugment only
  strong: str = "autoaugment"  # one of STRONG_POLICIES


def to_float(images: Array) -> Array:
  return images.astype(jnp.float32) / 255.0


def normalize(images: Array, mean: Sequence[float], std: Sequence[float]) -> Array:
  return (images - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def _resized_crop(key: Array, img: Array, scale: tuple[float, float],
                  ratio: tuple[float, float]) -> Array:
  h, w = img.shape[:2]
  k1, k2, k3, k4 = jax.random.split(key, 4)
  area = jax.random.uniform(k1, minval=scale[0], maxval=scale[1])
  log_ratio = jax.random.uniform(k2, minval=jnp.log(ratio[0]), maxval=jnp.log(ratio[1]))
  ratio = jnp.exp(log_ratio)
  ch = jnp.clip(jnp.sqrt(area / ratio), 0.1, 1.0) * h
  cw = jnp.clip(jnp.sqrt(area * ratio), 0.1, 1.0) * w
  top = jax.random.uniform(k3) * (h - ch)
  left = jax.random.uniform(k4) * (w - cw)
  scale_hw = jnp.stack([h / ch, w / cw])
  translate = -jnp.stack([top, left]) * scale_hw
  return jax.image.scale_and_translate(img, img.shape, (0, 1), scale_hw, translate, "linear")


def _jitter(key: Array, img: Array, strength: float) -> Array:
  kb, kc, ks = jax.random.split(key, 3)
  f = lambda k: jax.random.uniform(k, minval=1 - strength, maxval=1 + strength)  # noqa: E731
  img = pil_ops.brightness(img, f(kb))
  img = pil_ops.contrast(img, f(kc))
  return pil_ops.color(img, f(ks))


def weak_one(key: Array, img: Array, cfg: AugmentConfig) -> Array:
  kc, kf, kj = jax.random.split(key, 3)
  img = _resized_crop(kc, img, cfg.crop_scale, cfg.crop_ratio)
  if cfg.flip:
    img = jnp.where(jax.random.uniform(kf) < 0.5, img[:, ::-1], img)
  if cfg.jitter > 0:
    img = _jitter(kj, img, cfg.jitter)
  return img


def _affine(img: Array, matrix: Array) -> Array:
  """Samples img at matrix @ (y, x, 1) about the centre (bilinear, zero fill)."""
  h, w = img.shape[:2]
  ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                        indexing="ij")
  cy, cx = (h - 1) / 2, (w - 1) / 2
  src_y = matrix[0, 0] * (ys - cy) + matrix[0, 1] * (xs - cx) + matrix[0, 2] + cy
  src_x = matrix[1, 0] * (ys - cy) + matrix[1, 1] * (xs - cx) + matrix[1, 2] + cx
  chans = [jax.scipy.ndimage.map_coordinates(img[..., c], [src_y, src_x], order=1, cval=0.5)
           for c in range(img.shape[-1])]
  return jnp.stack(chans, axis=-1)


def _rand_op(key: Array, img: Array) -> Array:
  """One RandAugment op with a random magnitude m in [0, 1] and random sign."""
  km, ks, ko = jax.random.split(key, 3)
  m = jax.random.uniform(km)
  sign = jnp.where(jax.random.uniform(ks) < 0.5, -1.0, 1.0)
  h = img.shape[0]

  def affine(a, b, c, d, ty=0.0, tx=0.0):
    return lambda x: _affine(x, jnp.asarray([[a, b, ty], [c, d, tx], [0, 0, 1]]))

  angle = sign * m * jnp.deg2rad(30.0)
  ops = [
      lambda x: x,  # identity
      pil_ops.autocontrast,
      lambda x: pil_ops.brightness(x, 1 + sign * m * 0.9),
      lambda x: pil_ops.contrast(x, 1 + sign * m * 0.9),
      lambda x: pil_ops.color(x, 1 + sign * m * 0.9),
      lambda x: pil_ops.sharpness(x, 1 + sign * m * 0.9),
      lambda x: pil_ops.posterize(x, 8 - jnp.round(m * 4)),
      lambda x: pil_ops.solarize(x, 1.0 - m),
      affine(jnp.cos(angle), -jnp.sin(angle), jnp.sin(angle), jnp.cos(angle)),  # rotate
      affine(1.0, sign * m * 0.3, 0.0, 1.0),  # shear x
      affine(1.0, 0.0, sign * m * 0.3, 1.0),  # shear y
      affine(1.0, 0.0, 0.0, 1.0, ty=sign * m * 0.3 * h),  # translate y
      affine(1.0, 0.0, 0.0, 1.0, tx=sign * m * 0.3 * h),  # translate x
  ]
  index = jax.random.randint(ko, (), 0, len(ops))
  return jax.lax.switch(index, ops, img)


def _cutout(key: Array, img: Array, frac: float) -> Array:
  h, w = img.shape[:2]
  ks, ky, kx = jax.random.split(key, 3)
  size = jax.random.uniform(ks) * frac * h
  cy, cx = jax.random.uniform(ky) * h, jax.random.uniform(kx) * w
  ys, xs = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  inside = (jnp.abs(ys - cy) <= size / 2) & (jnp.abs(xs - cx) <= size / 2)
  return jnp.where(inside[..., None], 0.5, img)


def strong_one(key: Array, img: Array, cfg: AugmentConfig) -> Array:
  if cfg.strong not in STRONG_POLICIES:
    raise ValueError(f"augment.strong={cfg.strong!r}; allowed: {list(STRONG_POLICIES)}")
  kw, ka = jax.random.split(key)
  img = weak_one(kw, img, cfg)
  if cfg.strong == "autoaugment":
    return autoaugment.autoaugment_one(ka, img)
  return _randaugment(ka, img, cfg)


def _randaugment(key: Array, img: Array, cfg: AugmentConfig) -> Array:
  """FixMatch's RandAugment: `num_ops` random ops, then Cutout."""
  kc, *ko = jax.random.split(key, 1 + cfg.num_ops)
  for k in ko:
    img = jnp.clip(_rand_op(k, img), 0.0, 1.0)
  if cfg.cutout > 0:
    img = _cutout(kc, img, cfg.cutout)
  return img


def weak(key: Array, images: Array, cfg: AugmentConfig) -> Array:
  """uint8 or [0, 1] float (N, H, W, 3) -> augmented float32 [0, 1]."""
  x = to_float(images) if images.dtype == jnp.uint8 else images
  keys = jax.random.split(key, x.shape[0])
  return jax.vmap(lambda k, i: weak_one(k, i, cfg))(keys, x)


def strong(key: Array, images: Array, cfg: AugmentConfig) -> Array:
  x = to_float(images) if images.dtype == jnp.uint8 else images
  keys = jax.random.split(key, x.shape[0])
  return jax.vmap(lambda k, i: strong_one(k, i, cfg))(keys, x)

"""Weak and strong augmentation on device, inside the jitted input transform.

Images arrive as uint8 (N, H, W, 3) at the training resolution; every function
here is a pure jnp function of (key, images), vmapped per image, so it runs on
the accelerator next to the train step and never starves it.

- weak: random resized crop (area `crop_scale`, aspect `crop_ratio`), horizontal
  flip, colour jitter (brightness, contrast, saturation).
- strong: weak, then `num_ops` RandAugment operations with random magnitude
  (FixMatch's RandAugment variant: every op draws its own magnitude), then a
  Cutout square of up to half the side.
Outputs are float32 in [0, 1]; `normalize` applies the checkpoint's mean/std.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  crop_scale: tuple[float, float] = (0.35, 1.0)
  crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
  flip: bool = True
  jitter: float = 0.4
  num_ops: int = 2
  cutout: float = 0.5


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


def _grey(img: Array) -> Array:
  return jnp.sum(img * jnp.asarray([0.299, 0.587, 0.114]), axis=-1, keepdims=True)


def _blend(a: Array, b: Array, factor: Array) -> Array:
  """b + factor * (a - b), clipped: PIL ImageEnhance semantics (factor 1 = a)."""
  return jnp.clip(b + factor * (a - b), 0.0, 1.0)


def _jitter(key: Array, img: Array, strength: float) -> Array:
  kb, kc, ks = jax.random.split(key, 3)
  f = lambda k: jax.random.uniform(k, minval=1 - strength, maxval=1 + strength)  # noqa: E731
  img = _blend(img, jnp.zeros_like(img), f(kb))
  img = _blend(img, jnp.mean(_grey(img)) * jnp.ones_like(img), f(kc))
  return _blend(img, _grey(img) * jnp.ones_like(img), f(ks))


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
      lambda x: _autocontrast(x),
      lambda x: _blend(x, jnp.zeros_like(x), 1 + sign * m * 0.9),  # brightness
      lambda x: _blend(x, jnp.mean(_grey(x)) * jnp.ones_like(x), 1 + sign * m * 0.9),  # contrast
      lambda x: _blend(x, _grey(x) * jnp.ones_like(x), 1 + sign * m * 0.9),  # colour
      lambda x: _blend(x, _smooth(x), 1 + sign * m * 0.9),  # sharpness
      lambda x: jnp.floor(x * 255 / 2 ** jnp.round(m * 4)) * 2 ** jnp.round(m * 4) / 255,
      lambda x: jnp.where(x >= 1.0 - m, 1.0 - x, x),  # solarize
      affine(jnp.cos(angle), -jnp.sin(angle), jnp.sin(angle), jnp.cos(angle)),  # rotate
      affine(1.0, sign * m * 0.3, 0.0, 1.0),  # shear x
      affine(1.0, 0.0, sign * m * 0.3, 1.0),  # shear y
      affine(1.0, 0.0, 0.0, 1.0, ty=sign * m * 0.3 * h),  # translate y
      affine(1.0, 0.0, 0.0, 1.0, tx=sign * m * 0.3 * h),  # translate x
  ]
  index = jax.random.randint(ko, (), 0, len(ops))
  return jax.lax.switch(index, ops, img)


def _autocontrast(img: Array) -> Array:
  lo = jnp.min(img, axis=(0, 1), keepdims=True)
  hi = jnp.max(img, axis=(0, 1), keepdims=True)
  return jnp.where(hi > lo, (img - lo) / jnp.maximum(hi - lo, 1e-6), img)


def _smooth(img: Array) -> Array:
  k = jnp.asarray([[1, 1, 1], [1, 5, 1], [1, 1, 1]], jnp.float32) / 13.0
  padded = jnp.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
  h, w = img.shape[:2]
  return sum(k[i, j] * padded[i:i + h, j:j + w] for i in range(3) for j in range(3))


def _cutout(key: Array, img: Array, frac: float) -> Array:
  h, w = img.shape[:2]
  ks, ky, kx = jax.random.split(key, 3)
  size = jax.random.uniform(ks) * frac * h
  cy, cx = jax.random.uniform(ky) * h, jax.random.uniform(kx) * w
  ys, xs = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  inside = (jnp.abs(ys - cy) <= size / 2) & (jnp.abs(xs - cx) <= size / 2)
  return jnp.where(inside[..., None], 0.5, img)


def strong_one(key: Array, img: Array, cfg: AugmentConfig) -> Array:
  kw, kc, *ko = jax.random.split(key, 2 + cfg.num_ops)
  img = weak_one(kw, img, cfg)
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

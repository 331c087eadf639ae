"""PIL's image operations in jnp, on one float32 (H, W, 3) image in [0, 1].

torchvision's AutoAugment and FixMatch's RandAugment are PIL operations
(ImageEnhance, ImageOps, Image.transform) on uint8 images; these are the same
operations as pure jnp functions, so they run on device inside the jitted
augmentation (`augment.py`, `autoaugment.py`). tests/data/pil_ops_test.py checks
each against PIL on a photo, with the tolerance each needs.

- dm-pix supplies solarize and the resampling (`affine_transform`, `rotate`); its
  brightness/contrast/saturation follow tf.image (additive shift, per-channel
  mean, HSV), not PIL, so the ImageEnhance blends are written here, as are
  autocontrast, equalize, posterize and sharpness, which dm-pix lacks.
- Continuous ops stay continuous (no uint8 rounding): PIL truncates the blend to
  uint8, so outputs differ from PIL by up to about one grey level.
- Equalize and posterize are defined on the 256 uint8 levels: they first round
  the image to them, as converting to uint8 would, and then match PIL exactly.
- Geometric ops sample nearest-neighbour with black fill, torchvision's
  AutoAugment defaults (`interpolation=NEAREST`, `fill=None`).
"""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp

Array = jax.Array

LEVELS = 256
# ITU-R 601-2 luma, PIL's convert("L") (Pillow computes it in fixed point and rounds).
_LUMA = (0.299, 0.587, 0.114)
# ImageFilter.SMOOTH: the 3x3 kernel ImageEnhance.Sharpness blends against.
_SMOOTH = ((1.0, 1.0, 1.0), (1.0, 5.0, 1.0), (1.0, 1.0, 1.0))


def grey(img: Array) -> Array:
  """(H, W, 1) luma, as PIL's convert("L") (unrounded)."""
  return jnp.sum(img * jnp.asarray(_LUMA, img.dtype), axis=-1, keepdims=True)


def blend(degenerate: Array, img: Array, factor: Array) -> Array:
  """Image.blend(degenerate, img, factor): factor 1 is img, 0 is degenerate; clipped."""
  return jnp.clip(degenerate + factor * (img - degenerate), 0.0, 1.0)


def brightness(img: Array, factor: Array) -> Array:
  """ImageEnhance.Brightness: blend with black."""
  return blend(jnp.zeros_like(img), img, factor)


def contrast(img: Array, factor: Array) -> Array:
  """ImageEnhance.Contrast: blend with the mean luma (one value for all channels)."""
  return blend(jnp.broadcast_to(jnp.mean(grey(img)), img.shape), img, factor)


def color(img: Array, factor: Array) -> Array:
  """ImageEnhance.Color (torchvision's adjust_saturation): blend with the luma image."""
  return blend(jnp.broadcast_to(grey(img), img.shape), img, factor)


def sharpness(img: Array, factor: Array) -> Array:
  """ImageEnhance.Sharpness: blend with the SMOOTH-filtered image.

  PIL's 3x3 filters leave the one-pixel border as it was, so the border is
  unchanged whatever the factor.
  """
  h, w = img.shape[:2]
  k = jnp.asarray(_SMOOTH, img.dtype) / 13.0
  inner = sum(k[i, j] * img[i:i + h - 2, j:j + w - 2] for i in range(3) for j in range(3))
  smooth = img.at[1:-1, 1:-1].set(inner)
  return blend(smooth, img, factor)


def autocontrast(img: Array) -> Array:
  """ImageOps.autocontrast (no cutoff): each channel stretched to [0, 1].

  A constant channel is left as it is. PIL truncates the stretched value to uint8;
  this keeps it exact.
  """
  lo = jnp.min(img, axis=(0, 1), keepdims=True)
  hi = jnp.max(img, axis=(0, 1), keepdims=True)
  return jnp.where(hi > lo, (img - lo) / jnp.where(hi > lo, hi - lo, 1.0), img)


def to_levels(img: Array) -> Array:
  """The nearest of the 256 uint8 levels, as int32."""
  return jnp.round(jnp.clip(img, 0.0, 1.0) * (LEVELS - 1)).astype(jnp.int32)


def posterize(img: Array, bits: Array) -> Array:
  """ImageOps.posterize: keep the top `bits` bits of each uint8 level."""
  step = 2 ** (8 - jnp.asarray(bits, jnp.int32))
  return (to_levels(img) // step * step).astype(img.dtype) / (LEVELS - 1)


def solarize(img: Array, threshold: Array) -> Array:
  """ImageOps.solarize: values at or above `threshold` (on [0, 1]) are inverted."""
  return dm_pix.solarize(img, threshold)


def invert(img: Array) -> Array:
  """ImageOps.invert."""
  return 1.0 - img


def _equalize_channel(levels: Array) -> Array:
  """ImageOps.equalize's lookup table for one channel of int32 levels, applied."""
  hist = jnp.zeros(LEVELS, jnp.int32).at[levels.ravel()].add(1)
  total = levels.size
  top = jnp.max(jnp.where(hist > 0, jnp.arange(LEVELS), 0))  # the highest level present
  # PIL: step = (pixels not at the highest level) // 255; the map is the identity
  # when step is 0, which covers a single-level channel too.
  step = (total - hist[top]) // (LEVELS - 1)
  below = jnp.cumsum(hist) - hist  # pixels strictly below each level
  lut = jnp.minimum((step // 2 + below) // jnp.maximum(step, 1), LEVELS - 1)
  lut = jnp.where(step > 0, lut, jnp.arange(LEVELS))
  return lut[levels]


def equalize(img: Array) -> Array:
  """ImageOps.equalize, per channel, on the image rounded to uint8 levels."""
  levels = to_levels(img)
  out = jnp.stack([_equalize_channel(levels[..., c]) for c in range(img.shape[-1])], -1)
  return out.astype(img.dtype) / (LEVELS - 1)


def rotate(img: Array, degrees: Array) -> Array:
  """Image.rotate(degrees): counter-clockwise about the centre, nearest, black fill."""
  return dm_pix.rotate(img, jnp.deg2rad(degrees), order=0, mode="constant", cval=0.0)


def shear_x(img: Array, shear: Array) -> Array:
  """Image.transform(AFFINE, (1, shear, 0, 0, 1, 0)), nearest, black fill.

  Output pixel (x, y) reads input x + shear * y, both at pixel centres (PIL's
  +0.5); with rows first and integer pixel centres that is column
  c + shear * (r + 0.5). torchvision's ShearX builds this matrix (its centre is
  the top-left corner).
  """
  matrix = jnp.asarray([[1.0, 0.0, 0.0], [shear, 1.0, 0.0], [0.0, 0.0, 1.0]])
  offset = jnp.stack([0.0, shear * 0.5, 0.0])
  return dm_pix.affine_transform(img, matrix, offset=offset, order=0, mode="constant",
                                 cval=0.0)

"""PIL's image operations in jnp, on one float32 (H, W, 3) image in [0, 1].

torchvision's AutoAugment and FixMatch's RandAugment are PIL operations
(ImageEnhance, ImageOps, Image.transform) on uint8 images; these are the same
operations as pure jnp functions, so they run on device inside the jitted
augmentation (`augment.py`, `autoaugment.py`). tests/data/pil_ops_test.py checks
each against PIL on a photo, with the tolerance each needs.

- All are written here: dm-pix's brightness/contrast/saturation follow tf.image
  (additive shift, per-channel mean, HSV), not PIL, and it lacks autocontrast,
  equalize, posterize and sharpness. Its nearest-neighbour `affine_transform`
  gathers each channel with 3-D coordinates; `warp` gathers whole pixels at the same
  2-D coordinates (equal outputs, a third of the index work), and takes the matrix as
  data, so AutoAugment warps each image once with its own drawn matrix.
- Continuous ops stay continuous (no uint8 rounding): PIL truncates the blend to
  uint8, so outputs differ from PIL by up to about one grey level.
- Equalize and posterize are defined on the 256 uint8 levels: they first round
  the image to them, as converting to uint8 would, and then match PIL exactly.
- Geometric ops sample nearest-neighbour with black fill, torchvision's
  AutoAugment defaults (`interpolation=NEAREST`, `fill=None`).
"""

from __future__ import annotations

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
  return blend(smooth(img), img, factor)


def smooth(img: Array) -> Array:
  """ImageFilter.SMOOTH inside the one-pixel border, the border as it was."""
  img = jnp.asarray(img)
  h, w = img.shape[:2]
  k = jnp.asarray(_SMOOTH, img.dtype) / 13.0
  inner = sum(k[i, j] * img[i:i + h - 2, j:j + w - 2] for i in range(3) for j in range(3))
  return img.at[1:-1, 1:-1].set(inner)


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
  return posterize_lut(bits)[to_levels(img)].astype(img.dtype) / (LEVELS - 1)


def solarize(img: Array, threshold: Array) -> Array:
  """ImageOps.solarize: values at or above `threshold` (on [0, 1]) are inverted."""
  return jnp.where(img < threshold, img, 1.0 - img)


def invert(img: Array) -> Array:
  """ImageOps.invert."""
  return 1.0 - img


def posterize_lut(bits: Array) -> Array:
  """(LEVELS,) int32: `posterize`'s map of the uint8 levels."""
  step = 2 ** (8 - jnp.asarray(bits, jnp.int32))
  return jnp.arange(LEVELS) // step * step


def equalize_lut(levels: Array) -> Array:
  """(LEVELS,) int32: ImageOps.equalize's lookup table for one channel of int32 levels."""
  hist = jnp.zeros(LEVELS, jnp.int32).at[levels.ravel()].add(1)
  total = levels.size
  top = jnp.max(jnp.where(hist > 0, jnp.arange(LEVELS), 0))  # the highest level present
  # PIL: step = (pixels not at the highest level) // 255; the map is the identity
  # when step is 0, which covers a single-level channel too.
  step = (total - hist[top]) // (LEVELS - 1)
  below = jnp.cumsum(hist) - hist  # pixels strictly below each level
  lut = jnp.minimum((step // 2 + below) // jnp.maximum(step, 1), LEVELS - 1)
  return jnp.where(step > 0, lut, jnp.arange(LEVELS))


def equalize(img: Array) -> Array:
  """ImageOps.equalize, per channel, on the image rounded to uint8 levels."""
  levels = to_levels(img)
  out = jnp.stack([equalize_lut(levels[..., c])[levels[..., c]] for c in range(img.shape[-1])],
                  -1)
  return out.astype(img.dtype) / (LEVELS - 1)


def warp(img: Array, matrix: Array, offset: Array) -> Array:
  """Nearest-neighbour pull resampling with black fill.

  Output pixel (r, c) reads input pixel round(matrix @ (r, c, 0) + offset), rounding
  half away from zero, and is black where that falls outside: dm-pix's
  `affine_transform(order=0, mode="constant")` for a matrix that keeps the channel.
  The coordinates are the same dot product, so they round alike to the last bit
  (summed elementwise, a pixel a few hundred ulps from a half-pixel boundary can
  round the other way); HIGHEST keeps it float32 where a GPU would use TF32.

  Args:
    img: (H, W, C).
    matrix: (3, 3) over (row, column, channel); its last row and column are
      (0, 0, 1).
    offset: (3,), the last 0.
  """
  h, w, c = img.shape
  grid = jnp.stack(jnp.meshgrid(jnp.arange(h), jnp.arange(w), jnp.arange(1), indexing="ij"),
                   -1)
  coords = jnp.matmul(grid, matrix.T, precision=jax.lax.Precision.HIGHEST)[:, :, 0] + offset
  src = jax.lax.round(coords[..., :2]).astype(jnp.int32)
  src_r, src_c = src[..., 0], src[..., 1]
  inside = (src_r >= 0) & (src_r < h) & (src_c >= 0) & (src_c < w)
  flat = jnp.clip(src_r, 0, h - 1) * w + jnp.clip(src_c, 0, w - 1)
  pixels = jnp.take(img.reshape(h * w, c), flat.reshape(-1), axis=0).reshape(h, w, c)
  return jnp.where(inside[..., None], pixels, jnp.zeros((), img.dtype))


def rotation(degrees: Array, height: int, width: int) -> tuple[Array, Array]:
  """`warp`'s (matrix, offset) for Image.rotate(degrees) about the centre (dm-pix's)."""
  angle = jnp.deg2rad(jnp.asarray(degrees, jnp.float32))
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  zero, one = jnp.zeros_like(cos), jnp.ones_like(cos)
  matrix = jnp.stack([jnp.stack([cos, sin, zero]), jnp.stack([-sin, cos, zero]),
                      jnp.stack([zero, zero, one])])
  centre = jnp.asarray([(height - 1) / 2, (width - 1) / 2, 0.0], jnp.float32)
  return matrix, centre - jnp.matmul(matrix, centre, precision=jax.lax.Precision.HIGHEST)


def shearing_x(shear: Array) -> tuple[Array, Array]:
  """`warp`'s (matrix, offset) for Image.transform(AFFINE, (1, shear, 0, 0, 1, 0)).

  Output pixel (x, y) reads input x + shear * y, both at pixel centres (PIL's
  +0.5); with rows first and integer pixel centres that is column
  c + shear * (r + 0.5). torchvision's ShearX builds this matrix (its centre is
  the top-left corner).
  """
  shear = jnp.asarray(shear, jnp.float32)
  zero, one = jnp.zeros_like(shear), jnp.ones_like(shear)
  matrix = jnp.stack([jnp.stack([one, zero, zero]), jnp.stack([shear, one, zero]),
                      jnp.stack([zero, zero, one])])
  return matrix, jnp.stack([zero, shear * 0.5, zero])


def rotate(img: Array, degrees: Array) -> Array:
  """Image.rotate(degrees): counter-clockwise about the centre, nearest, black fill."""
  return warp(img, *rotation(degrees, *img.shape[:2]))


def shear_x(img: Array, shear: Array) -> Array:
  """Image.transform(AFFINE, (1, shear, 0, 0, 1, 0)), nearest, black fill (`shearing_x`)."""
  return warp(img, *shearing_x(shear))

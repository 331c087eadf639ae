"""Each jnp image op against PIL, the library torchvision's AutoAugment calls, on a photo.

Tolerances are in uint8 grey levels, and each says why it is not zero:
- enhance blends (brightness, contrast, colour, sharpness): PIL truncates the blend
  to uint8 (up to 1 level) and blends against a rounded luma/mean/smoothed image
  (up to 0.5 level, times |1 - factor| <= 0.9): 1.5 levels.
- autocontrast: PIL truncates the stretched value (int(...)): 1 level.
- equalize, posterize, solarize, invert: defined on uint8 levels here too: the same
  levels (values equal up to float32 rounding of level / 255).
- rotate, shear (nearest neighbour): a pixel can take the neighbouring source where
  its source coordinate is within float error of a pixel boundary (PIL computes the
  matrix in float64, we in float32): at most 0.5% of the values differ.
"""

import functools

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps
from sklearn.datasets import load_sample_image

from tofa_jax.data import pil_ops

LEVEL = 1 / 255


@functools.cache
def _photo() -> Image.Image:
  # 48 x 64 keeps the eager ops quick; a photo has the full range of levels.
  return Image.fromarray(load_sample_image("china.jpg")).resize((64, 48), Image.BILINEAR)


def _ours(op, *args) -> np.ndarray:
  x = jnp.asarray(np.asarray(_photo()), jnp.float32) / 255.0
  out = np.asarray(op(x, *args))
  assert out.shape == (48, 64, 3) and out.dtype == np.float32
  return out


def _ref(img: Image.Image) -> np.ndarray:
  return np.asarray(img, np.float32) / 255.0


@pytest.mark.parametrize("factor", [0.1, 0.55, 1.0, 1.6, 1.9])  # AutoAugment: 1 +- [0, 0.9]
@pytest.mark.parametrize("name", ["Brightness", "Contrast", "Color", "Sharpness"])
def test_enhance_matches_pil_image_enhance(name, factor):
  ours = _ours(getattr(pil_ops, name.lower()), factor)
  ref = _ref(getattr(ImageEnhance, name)(_photo()).enhance(factor))
  np.testing.assert_allclose(ours, ref, rtol=0, atol=1.5 * LEVEL)
  if factor != 1.0:  # the op did something, and not just to the border
    assert np.abs(ours - _ref(_photo()))[1:-1, 1:-1].max() > 2 * LEVEL


def test_autocontrast_matches_pil():
  ours, ref = _ours(pil_ops.autocontrast), _ref(ImageOps.autocontrast(_photo()))
  np.testing.assert_allclose(ours, ref, rtol=0, atol=LEVEL + 1e-6)
  np.testing.assert_allclose(ours.min(axis=(0, 1)), 0.0)
  np.testing.assert_allclose(ours.max(axis=(0, 1)), 1.0)


def _assert_same_levels(ours, ref):
  np.testing.assert_array_equal(np.round(ours * 255), np.round(ref * 255))
  np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("op,ref", [
    (pil_ops.equalize, ImageOps.equalize),
    (pil_ops.invert, ImageOps.invert),
])
def test_level_ops_match_pil_exactly(op, ref):
  _assert_same_levels(_ours(op), _ref(ref(_photo())))


@pytest.mark.parametrize("bits", [4, 5, 6, 8])  # the policy's bins 8, 7, 6/5, 0
def test_posterize_matches_pil_exactly(bits):
  _assert_same_levels(_ours(pil_ops.posterize, bits),
                      _ref(ImageOps.posterize(_photo(), bits)))


@pytest.mark.parametrize("level", np.linspace(255.0, 0.0, 10))  # torchvision's bins
def test_solarize_matches_pil_exactly(level):
  _assert_same_levels(_ours(pil_ops.solarize, level / 255.0),
                      _ref(ImageOps.solarize(_photo(), level)))


def test_equalize_keeps_a_flat_image():
  flat = jnp.full((4, 5, 3), 0.4, jnp.float32)
  np.testing.assert_allclose(pil_ops.equalize(flat), np.round(0.4 * 255) / 255, atol=1e-7)


def _assert_nearly_all_equal(ours, ref):
  differ = ~np.isclose(ours, ref, rtol=0, atol=1e-6)
  assert differ.mean() <= 0.005, differ.mean()


@pytest.mark.parametrize("degrees", [30.0, -26.67, 10.0])  # the policy's bins 9, 8, 3
def test_rotate_matches_pil_nearest_black_fill(degrees):
  ref = _photo().rotate(degrees, resample=Image.NEAREST, fillcolor=(0, 0, 0))
  ours = _ours(pil_ops.rotate, degrees)
  _assert_nearly_all_equal(ours, _ref(ref))
  assert (ours == 0).all(axis=-1).any()  # the corners are filled black


@pytest.mark.parametrize("shear", [0.3 * 5 / 9, -0.3 * 5 / 9, 0.3])  # bin 5, signed, bin 9
def test_shear_x_matches_pil_affine_transform(shear):
  # torchvision's ShearX: F.affine(shear=degrees(atan(m)), center=[0, 0]) is PIL's
  # Image.transform with the inverse matrix (1, m, 0, 0, 1, 0).
  ref = _photo().transform(_photo().size, Image.AFFINE, (1, shear, 0, 0, 1, 0),
                           resample=Image.NEAREST, fillcolor=(0, 0, 0))
  _assert_nearly_all_equal(_ours(pil_ops.shear_x, shear), _ref(ref))

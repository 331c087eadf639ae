"""Evaluation-time image preprocessing: resize, centre crop, normalise.

The normalisation a checkpoint expects (`mean`, `std` on [0, 1] pixels) is
stored with converted params (`convert_torch.Converted.mean/std`), so callers
pass it through instead of hard-coding ImageNet's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CROP_FRACTION = 0.875  # resize the shorter side to size / 0.875, then crop `size`


def centre_crop_uint8(image: np.ndarray, size: int, crop_fraction: float = CROP_FRACTION,
                     resample: str = "bicubic") -> np.ndarray:
  """uint8 HWC -> uint8 (size, size, 3): shorter side to size / crop_fraction, centre crop."""
  from PIL import Image

  if image.shape[0] == image.shape[1] == size and crop_fraction == 1.0:
    return np.asarray(image, np.uint8)
  pil = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
  w, h = pil.size
  scale = size / crop_fraction / min(w, h)
  method = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[resample]
  pil = pil.resize((max(size, round(w * scale)), max(size, round(h * scale))), method)
  w, h = pil.size
  left, top = (w - size) // 2, (h - size) // 2
  return np.asarray(pil.crop((left, top, left + size, top + size)), np.uint8)


def resize_centre_crop(image: np.ndarray, size: int, crop_fraction: float = CROP_FRACTION
                       ) -> np.ndarray:
  """uint8 HWC RGB -> float32 [0, 1] (size, size, 3), bicubic, as ImageNet eval does."""
  return centre_crop_uint8(image, size, crop_fraction).astype(np.float32) / 255.0


def read_rgb(path: str) -> np.ndarray:
  """An image file as uint8 RGB HWC; a one-line error names an unreadable one."""
  from PIL import Image, UnidentifiedImageError

  try:
    with Image.open(path) as img:
      return np.asarray(img.convert("RGB"))
  except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
    raise ValueError(f"--image={path}: cannot read an image ({e})") from None


def load_image(path: str, size: int) -> np.ndarray:
  """Reads an image file into float32 [0, 1] (size, size, 3)."""
  return resize_centre_crop(read_rgb(path), size)


def normalize(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
  """(x - mean) / std over the last (channel) axis, for [0, 1] images."""
  return ((images - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(
      np.float32)

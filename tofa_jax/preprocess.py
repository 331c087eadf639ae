"""Evaluation-time image preprocessing: resize, centre crop, normalise.

The normalisation a checkpoint expects (`mean`, `std` on [0, 1] pixels) is
stored with converted params (`convert_torch.Converted.mean/std`), so callers
pass it through instead of hard-coding ImageNet's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CROP_FRACTION = 0.875  # resize the shorter side to size / 0.875, then crop `size`


def resize_centre_crop(image: np.ndarray, size: int, crop_fraction: float = CROP_FRACTION
                       ) -> np.ndarray:
  """uint8 HWC RGB -> float32 [0, 1] (size, size, 3), bicubic, as ImageNet eval does."""
  from PIL import Image

  pil = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
  w, h = pil.size
  scale = size / crop_fraction / min(w, h)
  pil = pil.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
  w, h = pil.size
  left, top = (w - size) // 2, (h - size) // 2
  return np.asarray(pil.crop((left, top, left + size, top + size)), np.float32) / 255.0


def load_image(path: str, size: int) -> np.ndarray:
  """Reads an image file into float32 [0, 1] (size, size, 3)."""
  from PIL import Image, UnidentifiedImageError

  try:
    with Image.open(path) as img:
      rgb = np.asarray(img.convert("RGB"))
  except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
    raise ValueError(f"--image={path}: cannot read an image ({e})") from None
  return resize_centre_crop(rgb, size)


def normalize(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
  """(x - mean) / std over the last (channel) axis, for [0, 1] images."""
  return ((images - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(
      np.float32)

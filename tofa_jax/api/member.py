"""One ready model in Python: `load_member(DIR)` gives a `Member`.

A member is a static subnet with its variables and what meta.json stores with
it (`weights/export.py`): resolution, mean/std, how images are resized, class
names. `member(x)` runs the network on normalised float32 NHWC images (jitted;
each new batch size compiles once). `member.predict(images, top_k)` takes uint8
RGB images of any size (or image files), resizes, crops and normalises them as
the metadata says, and returns `[(name, class, p), ...]` per image; `python -m
tofa_jax.predict` prints the same. A converted params dir (`convert_torch`)
becomes a member through `from_converted`, at its own arch or any other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tofa_jax.data import preprocess
from tofa_jax.model import static_net
from tofa_jax.space import arch as arch_lib
from tofa_jax.weights import export, params_dir

# ImageNet evaluation (shorter side to size / 0.875, bicubic): what converted
# ImageNet checkpoints were measured with.
IMAGENET_PREPROCESS = {"crop_fraction": preprocess.CROP_FRACTION, "resample": "bicubic"}


class Member:
  """A static network and its preprocessing; see the module docstring."""

  def __init__(self, model, variables: dict, arch: arch_lib.Arch, mean, std,
               class_names: Sequence[str] | None = None, resize: dict | None = None,
               info: dict | None = None, path: str = ""):
    self.model, self.arch, self.path = model, arch, path
    self.mean, self.std = tuple(mean), tuple(std)
    self.class_names = tuple(class_names) if class_names else None
    self.resize = dict(resize or export.PALETTE_PREPROCESS)
    self.info = info or {}
    self.variables = jax.device_put(variables)
    self._apply = jax.jit(model.apply)

  @property
  def resolution(self) -> int:
    return self.arch.resolution

  @classmethod
  def from_converted(cls, conv: params_dir.Converted, arch: arch_lib.Arch | None = None,
                     path: str = "") -> Member:
    """The subnet `arch` (default: the checkpoint's own) of converted supernet variables."""
    arch = arch_lib.validate(conv.space, arch or conv.arch)
    model, variables = static_net.extract(conv.space, arch, conv.variables, conv.num_classes)
    return cls(model, variables, arch, conv.mean, conv.std, conv.class_names,
               IMAGENET_PREPROCESS, {"format": conv.format, "source": conv.source}, path)

  def __call__(self, images) -> jax.Array:
    """Logits of normalised float32 images (batch, resolution, resolution, 3)."""
    x = jnp.asarray(images, jnp.float32)
    r = self.resolution
    if x.ndim != 4 or x.shape[1:] != (r, r, 3):
      raise ValueError(f"images of shape {tuple(x.shape)}; this member takes (batch, {r}, {r}, 3)"
                       " float32, normalised (member.predict takes uint8 images of any size)")
    return self._apply(self.variables, x)

  def preprocess(self, images) -> np.ndarray:
    """uint8 RGB images (one HWC array, an NHWC batch, a list of either, or image files)
    -> normalised float32 (n, resolution, resolution, 3), as the metadata says."""
    crops = [preprocess.centre_crop_uint8(im, self.resolution, self.resize["crop_fraction"],
                                          self.resize["resample"]) for im in _images(images)]
    return preprocess.normalize(np.stack(crops).astype(np.float32) / 255.0, self.mean, self.std)

  def predict(self, images, top_k: int = 5) -> list[list[tuple[str | None, int, float]]]:
    """Per image, the `top_k` most probable (class name, class index, probability)."""
    return top_classes(np.asarray(self(self.preprocess(images))), top_k, self.class_names)

  def __repr__(self) -> str:
    classes = len(self.class_names) if self.class_names else "unnamed"
    return (f"Member({self.path or '<in memory>'}, {self.resolution} px, "
            f"{self.info.get('mflops', '?')} MFLOPs, classes: {classes})")


def top_classes(logits: np.ndarray, k: int, names: Sequence[str] | None
                ) -> list[list[tuple[str | None, int, float]]]:
  """[(name, class, probability)] of the k largest softmax entries of each row."""
  if k < 1:
    raise ValueError(f"top_k={k}; use at least 1")
  z = np.asarray(logits, np.float64)
  p = np.exp(z - z.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  order = np.argsort(-p, axis=-1, kind="stable")[:, :k]
  return [[(names[i] if names else None, int(i), float(row[i])) for i in idx]
          for row, idx in zip(p, order, strict=True)]


def _images(images: Any) -> list[np.ndarray]:
  if isinstance(images, (str, os.PathLike)):
    return [preprocess.read_rgb(os.fspath(images))]
  if isinstance(images, np.ndarray) or hasattr(images, "__array__"):
    a = np.asarray(images)
    if a.dtype != np.uint8:
      raise ValueError(f"images of dtype {a.dtype}; member.predict takes uint8 RGB images "
                       "(call member(x) on normalised float32 images)")
    if a.ndim == 4 and a.shape[-1] == 3:
      return list(a)
    if a.ndim == 3 and a.shape[-1] == 3:
      return [a]
    raise ValueError(f"an image array of shape {a.shape}; expected (H, W, 3) or (N, H, W, 3)")
  if isinstance(images, Sequence) and images:
    return [im for item in images for im in _images(item)]
  raise ValueError(f"images: expected uint8 arrays, a list of them or image files, not "
                   f"{type(images).__name__}")


def load_member(path: str) -> Member:
  """The member stored in `path`: a palette member (or fine-tuned one), or a converted
  params dir at its checkpoint's own arch. Checksums are checked first."""
  path = os.path.abspath(os.fspath(path))
  if export.is_static(path):
    s = export.load(path)
    return Member(s.model, s.variables, s.arch, s.mean, s.std, s.class_names, s.preprocess,
                  s.info, path)
  return Member.from_converted(params_dir.load(path), path=path)

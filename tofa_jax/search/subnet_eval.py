"""Predictions of many subnets on one labelled split, each after BN recalibration.

Search (TOFA eq. 5, REG-NAS) and palette reports evaluate hundreds of subnets.
Per resolution, the calibration images and the split are stored once on the
devices as uint8 (sharded over the mesh's `data` axis), and one jitted program
recalibrates BN for the subnet (lax.scan over the calibration batches) and
predicts the whole split (lax.scan over its batches). The subnet is an
argument, so every subnet at a resolution reuses that program.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from tofa_jax.data import augment, input_pipeline
from tofa_jax.model import bn_calibration
from tofa_jax.model.supernet import Supernet
from tofa_jax.runtime import mesh as mesh_lib
from tofa_jax.space import arch as arch_lib


def stacked_split(source, indices: np.ndarray, size: int, batch: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(images (n, B, S, S, 3) uint8, labels (n*B,), mask (n*B,)) of every image of
  `source[indices]`, the last batch padded (mask 0)."""
  images, labels, masks = [], [], []
  for b in input_pipeline.eval_batches(input_pipeline.Records(source, indices), size, batch):
    images.append(b["image"])
    labels.append(b["label"])
    masks.append(b["mask"])
  if not images:
    raise ValueError(f"no images to stack (indices {indices!r})")
  return np.stack(images), np.concatenate(labels), np.concatenate(masks)


class SubnetEvaluator:
  """`predictions(arch)`: class indices of `arch` on the split, cached per arch.

  Args:
    model: the supernet module.
    variables: trained {'params', 'batch_stats'}.
    mean, std: input normalisation.
    calib: (source, indices) of training images for BN recalibration, whole batches
      (`data/calibration.py` draws them); every one is used.
    split: (source, indices) of the labelled images to predict, every one of them (a
      padded last batch is masked out).
    batch_size: global batch (divisible by the device count).
  """

  def __init__(self, model: Supernet, variables: dict, mean: Sequence[float],
               std: Sequence[float], calib: tuple, split: tuple, batch_size: int):
    self.space = model.space
    mesh = mesh_lib.make_mesh()
    mesh_lib.check_batch_divides("evals.batch_size", batch_size, mesh.size)
    if len(calib[1]) == 0 or len(calib[1]) % batch_size:
      raise ValueError(f"{len(calib[1])} calibration images are not whole batches of "
                       f"evals.batch_size={batch_size}; draw them with data/calibration.py")
    self._replicated = NamedSharding(mesh, PartitionSpec())
    self._sharded = NamedSharding(mesh, PartitionSpec(None, "data"))
    self.variables = jax.device_put(variables, self._replicated)
    self.calib, self.split = calib, split
    self.batch_size = batch_size
    self._data: dict[int, tuple] = {}
    self._cache: dict[arch_lib.Arch, np.ndarray] = {}
    self.labels: np.ndarray | None = None
    calib_model = bn_calibration.calibration_model(model)
    preprocess = lambda x: augment.normalize(augment.to_float(x), mean, std)  # noqa: E731

    @functools.partial(jax.jit, static_argnames=("resolution",))
    def predict(variables, arch, calib_images, images, resolution):
      calibrated = bn_calibration.recalibrate(calib_model, variables, arch, calib_images,
                                              resolution, preprocess)

      def body(_, x):
        logits = model.apply(calibrated, preprocess(x), arch, train=False,
                             resolution=resolution)
        return None, jnp.argmax(logits, -1).astype(jnp.int32)

      return jax.lax.scan(body, None, images)[1]

    self._predict = predict
    self._calibrate = jax.jit(
        functools.partial(bn_calibration.recalibrate, calib_model, preprocess=preprocess),
        static_argnames=("resolution",))

  def _split_at(self, resolution: int) -> tuple:
    if resolution not in self._data:
      calib, _, _ = stacked_split(*self.calib, resolution, self.batch_size)
      images, labels, mask = stacked_split(*self.split, resolution, self.batch_size)
      keep = mask > 0
      if self.labels is None:
        self.labels = labels[keep]
      self._data[resolution] = (jax.device_put(calib, self._sharded),
                                jax.device_put(images, self._sharded), keep)
    return self._data[resolution]

  def predictions(self, arch: arch_lib.Arch) -> np.ndarray:
    if arch not in self._cache:
      calib, images, keep = self._split_at(arch.resolution)
      arrays = arch_lib.to_arrays(self.space, arch)
      preds = self._predict(self.variables, arrays, calib, images, resolution=arch.resolution)
      self._cache[arch] = np.asarray(preds).reshape(-1)[keep]
    return self._cache[arch]

  def calibrated_variables(self, arch: arch_lib.Arch) -> dict:
    """Supernet variables with BN recalibrated for `arch` (for export)."""
    calib, _, _ = self._split_at(arch.resolution)
    return self._calibrate(self.variables, arch_lib.to_arrays(self.space, arch), calib,
                           resolution=arch.resolution)

  def top1(self, arch: arch_lib.Arch) -> float:
    preds = self.predictions(arch)
    return float(np.mean(preds == self.labels))

  @property
  def evaluated(self) -> int:
    """Distinct subnets evaluated so far."""
    return len(self._cache)

  def compiled_programs(self) -> int:
    return self._predict._cache_size()

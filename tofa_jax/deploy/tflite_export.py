"""LiteRT (TFLite) export: jax2tf, then TensorFlow's TFLite converter.

`to_bytes(fn, hwc, batch)` converts a function of NHWC float32 images (a
'serving_default' signature: input 'images', output 'logits'). jax2tf stages the
function out as StableHLO; the converter lowers it to TFLite builtin ops, which
is why `folded_net` holds only plain `lax` ops.

The batch is fixed (1 by default), as mobile runtimes expect: with a free batch
every bias add becomes a BROADCAST_TO of a computed shape (155 of them in an
OFA-MBv3 subnet), which XNNPACK does not delegate; that model ran 8x slower.

`calibration` (normalised images, N x H x W x C) turns on post-training integer
quantisation: int8 weights and activations, ranges calibrated on those images
one at a time, float32 input and output so that the same preprocessing applies.
TensorFlow is imported only here, when a model is exported. `convert_member`
writes, beside each file, a sidecar `<file>.json` (`model.tflite.json`) holding
the member's `export.deploy_metadata`: class names, mean/std, resolution and
resize, which the flatbuffer itself does not carry.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable

import numpy as np

from tofa_jax.weights import export, folded_net

FILE, INT8_FILE = "model.tflite", "model_int8.tflite"


def _tf():
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up banner
  import tensorflow as tf

  return tf


def to_bytes(fn: Callable, hwc: tuple[int, int, int], calibration: np.ndarray | None = None,
             batch: int = 1) -> bytes:
  """The flatbuffer of `fn(images[batch, H, W, C]) -> logits`; int8 when calibrated."""
  tf = _tf()
  from jax.experimental import jax2tf

  converted = jax2tf.convert(lambda x: {"logits": fn(x)}, with_gradient=False)
  module = tf.Module()
  module.serve = tf.function(converted, autograph=False, input_signature=[
      tf.TensorSpec((batch, *hwc), tf.float32, name="images")])
  with tempfile.TemporaryDirectory() as tmp:
    tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
    converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
    if calibration is not None:
      calibration = np.asarray(calibration, np.float32)
      if calibration.ndim != 4 or calibration.shape[1:] != tuple(hwc) or not len(calibration):
        raise ValueError(f"int8 calibration images have shape {calibration.shape}; expected "
                         f"N x {hwc[0]} x {hwc[1]} x {hwc[2]} with N >= 1")
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
      reps = np.resize(calibration, (-(-len(calibration) // batch) * batch, *hwc))
      converter.representative_dataset = lambda: ([reps[i:i + batch]]
                                                  for i in range(0, len(reps), batch))
      converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    else:
      converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def convert_member(static_dir: str, calibration: np.ndarray | None = None,
                   batch: int = 1) -> str:
  """`static_dir`/model.tflite (model_int8.tflite when calibrated), batch `batch`."""
  static = export.load(static_dir)
  r = static.arch.resolution
  data = to_bytes(folded_net.subnet_fn(static.space, static.arch, static.variables), (r, r, 3),
                  calibration, batch)
  path = os.path.join(static_dir, FILE if calibration is None else INT8_FILE)
  with open(path, "wb") as f:
    f.write(data)
  with open(sidecar(path), "w") as f:
    json.dump({**export.deploy_metadata(static), "batch": batch,
               "quantized": "int8" if calibration is not None else None}, f, indent=1)
  return path


def sidecar(path: str) -> str:
  """The JSON beside a .tflite file that holds its preprocessing and class names."""
  return f"{path}.json"

"""ONNX export of a palette member, converted by jax2onnx from `folded_net.forward`.

The graph takes normalised NHWC float32 images at the member's resolution under
the input name 'images', with a free batch dimension 'B', and returns logits
('logits'). BatchNorm is folded into the convolutions before conversion, so the
file holds convolutions, elementwise ops, means, one pooling and one Gemm/MatMul.

jax2onnx is pinned to 0.13.0: later releases pin orbax-checkpoint below the
project's 0.12.8. It converts plain `lax` graphs exactly; the Flax StaticNet it
does not (docs/export.md).
"""

from __future__ import annotations

import logging
import os

import jax.numpy as jnp

from tofa_jax.space import arch as arch_lib
from tofa_jax.space.search_space import SearchSpace
from tofa_jax.weights import export, folded_net

FILE = "model.onnx"


def convert(space: SearchSpace, arch: arch_lib.Arch, static_variables: dict, path: str) -> str:
  """Writes the ONNX model of `arch` (StaticNet variables, BN folded here) to `path`."""
  # jax2onnx warns, with a traceback, about its dm_pix plugins, which this graph never uses.
  logging.getLogger("jax2onnx.plugins.plugin_system").setLevel(logging.ERROR)
  from jax2onnx import to_onnx

  weights = {k: jnp.asarray(v) for k, v in folded_net.fold(space, arch, static_variables).items()}
  r = arch.resolution
  model = to_onnx(lambda images: folded_net.forward(space, arch, weights, images),
                  [("B", r, r, 3)], model_name=f"tofa_{space.name}_{r}px",
                  input_names=["images"], output_names=["logits"])
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "wb") as f:
    f.write(model.SerializeToString())
  return path


def convert_member(static_dir: str) -> str:
  """`static_dir`/model.onnx from a palette member's static model directory."""
  static = export.load(static_dir)
  return convert(static.space, static.arch, static.variables, os.path.join(static_dir, FILE))

"""ONNX export, converted by jax2onnx from plain `lax` functions.

`to_bytes(fn, hwc)` converts any function of NHWC float32 images with a free batch
dimension 'B' (input 'images', output 'logits'); `convert` does it for a subnet's
`folded_net.forward`, BatchNorm folded into the convolutions first, so the file
holds convolutions, elementwise ops, means, one pooling and one Gemm/MatMul.
`convert_member` also writes the member's `export.deploy_metadata` (class names,
mean/std, resolution, resize) into the model's `metadata_props`, one entry per
key, each value a JSON string (`read_metadata` reads them back).

jax2onnx is pinned to 0.13.0: later releases pin orbax-checkpoint below the
project's 0.12.8. It converts plain `lax` graphs exactly; the Flax StaticNet it
does not (docs/export.md).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable

from tofa_jax.space import arch as arch_lib
from tofa_jax.space.search_space import SearchSpace
from tofa_jax.weights import export, folded_net

FILE = "model.onnx"


def to_bytes(fn: Callable, hwc: tuple[int, int, int], name: str = "tofa",
             metadata: dict | None = None) -> bytes:
  """The serialised ONNX model of `fn(images[B, H, W, C]) -> logits`, batch free;
  `metadata` goes to its metadata_props, values as JSON."""
  # jax2onnx warns, with a traceback, about its dm_pix plugins, which these graphs never use.
  logging.getLogger("jax2onnx.plugins.plugin_system").setLevel(logging.ERROR)
  from jax2onnx import to_onnx

  model = to_onnx(fn, [("B", *hwc)], model_name=name, input_names=["images"],
                  output_names=["logits"])
  for key, value in (metadata or {}).items():
    entry = model.metadata_props.add()
    entry.key, entry.value = key, json.dumps(value)
  return model.SerializeToString()


def read_metadata(path: str) -> dict:
  """The metadata_props of an ONNX file, JSON values decoded."""
  import onnx

  model = onnx.load(path, load_external_data=False)
  return {p.key: json.loads(p.value) for p in model.metadata_props}


def convert(space: SearchSpace, arch: arch_lib.Arch, static_variables: dict, path: str,
            metadata: dict | None = None) -> str:
  """Writes the ONNX model of `arch` (StaticNet variables, BN folded here) to `path`."""
  r = arch.resolution
  data = to_bytes(folded_net.subnet_fn(space, arch, static_variables), (r, r, 3),
                  f"tofa_{space.name}_{r}px", metadata)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)
  return path


def convert_member(static_dir: str) -> str:
  """`static_dir`/model.onnx from a palette member's static model directory."""
  static = export.load(static_dir)
  return convert(static.space, static.arch, static.variables, os.path.join(static_dir, FILE),
                 export.deploy_metadata(static))

"""A subnet as one plain function of folded weights, the form exporters convert.

`fold(space, arch, static_variables)` folds every BatchNorm into the convolution
before it (kernel * gamma / sqrt(var + eps), bias beta - mean * gamma / sqrt(var +
eps)) and returns flat `{name: array}` weights. `forward(space, arch, weights,
images)` is the subnet's inference in `lax` ops only, NHWC with HWIO kernels:
convolutions (depthwise as `feature_group_count`), means, elementwise
activations, a 2x2 average pool and one dense layer. No Flax module takes part,
so converters that replace Flax modules with their own layouts (jax2onnx's NCHW
Conv and BatchNorm plugins) see a graph of primitives in one layout.

The input is the member's own resolution (`arch.resolution`), normalised images;
the batch size is free. Its logits equal the StaticNet's in eval mode (tests:
every space the project ships, within float rounding).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from tofa_jax.model import elastic_ops as ops
from tofa_jax.space import arch as arch_lib
from tofa_jax.space import plan as plan_lib
from tofa_jax.space.search_space import SearchSpace

_DIMS = ("NHWC", "HWIO", "NHWC")


def _folded(kernel, bn_params, bn_stats, eps: float) -> tuple[np.ndarray, np.ndarray]:
  scale = np.asarray(bn_params["scale"], np.float64) / np.sqrt(
      np.asarray(bn_stats["var"], np.float64) + eps)
  bias = np.asarray(bn_params["bias"], np.float64) - np.asarray(bn_stats["mean"],
                                                                np.float64) * scale
  return ((np.asarray(kernel, np.float64) * scale).astype(np.float32),
          bias.astype(np.float32))


def fold(space: SearchSpace, arch: arch_lib.Arch, variables: dict) -> dict[str, np.ndarray]:
  """Flat folded weights of a StaticNet's `{'params', 'batch_stats'}` (from
  `static_net.extract`): '<module>/kernel' and '<module>/bias' per convolution."""
  p, s, eps = variables["params"], variables["batch_stats"], space.bn_eps
  out: dict[str, np.ndarray] = {}

  def conv_bn(name, kernel, bn_p, bn_s):
    out[f"{name}/kernel"], out[f"{name}/bias"] = _folded(kernel, bn_p, bn_s, eps)

  conv_bn("stem", p["stem"]["conv"]["kernel"], p["stem"]["bn"], s["stem"]["bn"])
  for lp in plan_lib.plan(space, arch):
    lw, ls = p[lp.name], s[lp.name]
    if lp.expand:
      conv_bn(f"{lp.name}/expand", lw["expand"]["kernel"], lw["expand_bn"], ls["expand_bn"])
    conv_bn(f"{lp.name}/depthwise", lw["depthwise"]["kernel"], lw["depthwise_bn"],
            ls["depthwise_bn"])
    if lp.se_mid:
      for m in ("se_reduce", "se_expand"):
        out[f"{lp.name}/{m}/kernel"] = np.asarray(lw[m]["kernel"], np.float32)
        out[f"{lp.name}/{m}/bias"] = np.asarray(lw[m]["bias"], np.float32)
    conv_bn(f"{lp.name}/project", lw["project"]["kernel"], lw["project_bn"], ls["project_bn"])
    if "conv" in lp.residual:
      out[f"{lp.name}/shortcut/kernel"] = np.asarray(lw["shortcut"]["kernel"], np.float32)
  head, head_s = p["head"], s["head"]
  if space.head == "conv":
    conv_bn("head/conv", head["conv"]["kernel"], head["bn"], head_s["bn"])
  else:
    conv_bn("head/final_expand", head["final_expand"]["kernel"], head["final_expand_bn"],
            head_s["final_expand_bn"])
    out["head/feature_mix/kernel"] = np.asarray(head["feature_mix"]["kernel"], np.float32)
    if space.head_bias:
      out["head/feature_mix/bias"] = np.asarray(head["feature_mix"]["bias"], np.float32)
  out["classifier/kernel"] = np.asarray(p["classifier"]["kernel"], np.float32)
  out["classifier/bias"] = np.asarray(p["classifier"]["bias"], np.float32)
  return out


def _conv(x, w, b=None, stride=1, padding="symmetric", groups=1):
  k = w.shape[0]
  pads = [plan_lib.conv_pads(x.shape[i], k, stride, padding) for i in (1, 2)]
  y = lax.conv_general_dilated(x, w, (stride, stride), pads, dimension_numbers=_DIMS,
                               feature_group_count=groups)
  return y if b is None else y + b


def stem(space: SearchSpace, weights: dict[str, jax.Array], images: jax.Array) -> jax.Array:
  """The stride-2 stem convolution and its activation."""
  return ops.activation(space.stem_act, _conv(images, weights["stem/kernel"],
                                              weights["stem/bias"], 2, space.padding))


def block(space: SearchSpace, lp: plan_lib.LayerPlan, weights: dict[str, jax.Array],
          x: jax.Array) -> jax.Array:
  """One MBConv layer: weights under '<lp.name>/...' (`block_shapes`)."""
  w, n = weights, lp.name
  h = x
  if lp.expand:
    h = ops.activation(lp.act, _conv(h, w[f"{n}/expand/kernel"], w[f"{n}/expand/bias"]))
  h = _conv(h, w[f"{n}/depthwise/kernel"], w[f"{n}/depthwise/bias"], lp.stride, space.padding,
            groups=lp.mid)
  h = ops.activation(lp.act, h)
  if lp.se_mid:
    g = jnp.mean(h, axis=(1, 2), keepdims=True)
    g = jax.nn.relu(_conv(g, w[f"{n}/se_reduce/kernel"], w[f"{n}/se_reduce/bias"]))
    h = h * ops.hard_sigmoid(_conv(g, w[f"{n}/se_expand/kernel"], w[f"{n}/se_expand/bias"]))
  y = _conv(h, w[f"{n}/project/kernel"], w[f"{n}/project/bias"])
  if lp.residual == "none":
    return y
  sc = x
  if "pool" in lp.residual:
    p = 0 if x.shape[2] % 2 == 0 else 1
    sc = lax.reduce_window(jnp.pad(sc, ((0, 0), (p, p), (p, p), (0, 0))), 0.0, lax.add,
                           (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4.0
  if "conv" in lp.residual:
    sc = _conv(sc, w[f"{n}/shortcut/kernel"])
  return y + sc


def head(space: SearchSpace, weights: dict[str, jax.Array], x: jax.Array) -> jax.Array:
  """The head convolutions, global pooling and the classifier: logits."""
  w = weights
  if space.head == "conv":
    x = ops.activation(space.head_act, _conv(x, w["head/conv/kernel"], w["head/conv/bias"]))
    x = jnp.mean(x, axis=(1, 2))
  else:
    x = ops.activation(space.head_act, _conv(x, w["head/final_expand/kernel"],
                                             w["head/final_expand/bias"]))
    x = jnp.mean(x, axis=(1, 2), keepdims=True)
    x = _conv(x, w["head/feature_mix/kernel"], w.get("head/feature_mix/bias"))
    # A squeeze, not [:, 0, 0]: with a free batch, indexing lowers to a dynamic gather that
    # the TFLite converter rejects.
    x = lax.squeeze(ops.activation(space.head_act, x), (1, 2))
  return x @ w["classifier/kernel"] + w["classifier/bias"]


def forward(space: SearchSpace, arch: arch_lib.Arch, weights: dict[str, jax.Array],
            images: jax.Array) -> jax.Array:
  """Logits of `arch` for normalised NHWC `images` at `arch.resolution`."""
  x = stem(space, weights, images)
  for lp in plan_lib.plan(space, arch):
    x = block(space, lp, weights, x)
  return head(space, weights, x)


def subnet_fn(space: SearchSpace, arch: arch_lib.Arch, static_variables: dict):
  """`images -> logits` of `arch`, BN folded, from a StaticNet's variables."""
  weights = {k: jnp.asarray(v) for k, v in fold(space, arch, static_variables).items()}
  return lambda images: forward(space, arch, weights, images)


def block_shapes(space: SearchSpace, lp: plan_lib.LayerPlan) -> dict[str, tuple[int, ...]]:
  """The shapes of `block`'s folded weights for one layer plan."""
  n, k = lp.name, lp.kernel
  shapes = {}
  if lp.expand:
    shapes |= {f"{n}/expand/kernel": (1, 1, lp.c_in, lp.mid), f"{n}/expand/bias": (lp.mid,)}
  shapes |= {f"{n}/depthwise/kernel": (k, k, 1, lp.mid), f"{n}/depthwise/bias": (lp.mid,)}
  if lp.se_mid:
    shapes |= {f"{n}/se_reduce/kernel": (1, 1, lp.mid, lp.se_mid),
               f"{n}/se_reduce/bias": (lp.se_mid,),
               f"{n}/se_expand/kernel": (1, 1, lp.se_mid, lp.mid),
               f"{n}/se_expand/bias": (lp.mid,)}
  shapes |= {f"{n}/project/kernel": (1, 1, lp.mid, lp.c_out), f"{n}/project/bias": (lp.c_out,)}
  if "conv" in lp.residual:
    shapes[f"{n}/shortcut/kernel"] = (1, 1, lp.c_in, lp.c_out)
  return shapes

"""Static subnet extraction: a plain Flax network with sliced supernet weights.

`extract(space, arch, variables, num_classes)` returns a `StaticNet` (ordinary
`nn.Conv`/`nn.BatchNorm`/`nn.Dense` layers, no masks, grouped depthwise conv)
and its variables cut out of the supernet's max-size arrays. This is the
deployable artifact; its logits equal the masked supernet's for the same arch.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from tofa_jax.model import elastic_ops as ops
from tofa_jax.space import arch as arch_lib
from tofa_jax.space import plan as plan_lib
from tofa_jax.space.search_space import SearchSpace


class StaticNet(nn.Module):
  """A fixed subnet built from standard Flax layers."""

  space: SearchSpace
  arch: arch_lib.Arch
  num_classes: int
  dropout_rate: float = 0.0
  bn_momentum: float = 0.9

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool = False) -> jax.Array:
    sp, a = self.space, self.arch
    if images.shape[1:3] != (a.resolution, a.resolution):
      images = jax.image.resize(images, (images.shape[0], a.resolution, a.resolution,
                                         images.shape[3]), method="bicubic")
    bn = lambda name: nn.BatchNorm(use_running_average=not train,  # noqa: E731
                                   momentum=self.bn_momentum, epsilon=sp.bn_eps, name=name)

    def conv(x, features, k, stride, name, groups=1, bias=False):
      pads = (plan_lib.conv_pads(x.shape[1], k, stride, sp.padding),
              plan_lib.conv_pads(x.shape[2], k, stride, sp.padding))
      return nn.Conv(features, (k, k), (stride, stride), pads, feature_group_count=groups,
                     use_bias=bias, name=name)(x)

    class _Stem(nn.Module):
      @nn.compact
      def __call__(self, x):
        x = conv(x, a.width[0], 3, 2, "conv")
        return ops.activation(sp.stem_act, bn("bn")(x))

    x = _Stem(name="stem")(images)
    for lp in plan_lib.plan(sp, a):
      x = _StaticMBConv(lp, sp.padding, sp.bn_eps, self.bn_momentum, name=lp.name)(x, train)

    class _Head(nn.Module):
      @nn.compact
      def __call__(self, x):
        if sp.head == "conv":
          x = conv(x, a.width[-1], 1, 1, "conv")
          x = ops.activation(sp.head_act, bn("bn")(x))
          return jnp.mean(x, axis=(1, 2))
        x = conv(x, plan_lib.head_expand_width(sp, a), 1, 1, "final_expand")
        x = ops.activation(sp.head_act, bn("final_expand_bn")(x))
        x = jnp.mean(x, axis=(1, 2), keepdims=True)
        x = conv(x, a.width[-1], 1, 1, "feature_mix", bias=sp.head_bias)
        return ops.activation(sp.head_act, x)[:, 0, 0, :]

    x = _Head(name="head")(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes, name="classifier")(x)


class _StaticMBConv(nn.Module):
  lp: plan_lib.LayerPlan
  padding: str
  bn_eps: float
  bn_momentum: float

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    lp = self.lp
    bn = lambda name: nn.BatchNorm(use_running_average=not train,  # noqa: E731
                                   momentum=self.bn_momentum, epsilon=self.bn_eps, name=name)
    h = x
    if lp.expand:
      h = nn.Conv(lp.mid, (1, 1), use_bias=False, name="expand")(h)
      h = ops.activation(lp.act, bn("expand_bn")(h))
    pads = tuple(plan_lib.conv_pads(h.shape[i], lp.kernel, lp.stride, self.padding) for i in (1, 2))
    h = nn.Conv(lp.mid, (lp.kernel, lp.kernel), (lp.stride, lp.stride), pads,
                feature_group_count=lp.mid, use_bias=False, name="depthwise")(h)
    h = ops.activation(lp.act, bn("depthwise_bn")(h))
    if lp.se_mid:
      g = jnp.mean(h, axis=(1, 2), keepdims=True)
      g = jax.nn.relu(nn.Conv(lp.se_mid, (1, 1), name="se_reduce")(g))
      g = ops.hard_sigmoid(nn.Conv(lp.mid, (1, 1), name="se_expand")(g))
      h = h * g
    y = bn("project_bn")(nn.Conv(lp.c_out, (1, 1), use_bias=False, name="project")(h))
    if lp.residual == "none":
      return y
    sc = x
    if "pool" in lp.residual:
      p = 0 if x.shape[2] % 2 == 0 else 1
      sc = nn.avg_pool(sc, (2, 2), (2, 2), ((p, p), (p, p)), count_include_pad=True)
    if "conv" in lp.residual:
      sc = nn.Conv(lp.c_out, (1, 1), use_bias=False, name="shortcut")(sc)
    return y + sc


def extract(space: SearchSpace, arch: arch_lib.Arch, variables: dict, num_classes: int,
            **kwargs) -> tuple[StaticNet, dict]:
  """Slices supernet `variables` into a StaticNet for `arch`.

  Returns:
    (model, {'params', 'batch_stats'}) ready for `model.apply(vars, images)`.
  """
  arch_lib.validate(space, arch)
  sp_params, sp_stats = variables["params"], variables["batch_stats"]
  params, stats = {}, {}

  def bn_slice(p, s, n):
    return ({"scale": p["scale"][:n], "bias": p["bias"][:n]},
            {"mean": s["mean"][:n], "var": s["var"][:n]})

  def put_bn(dst_p, dst_s, name, src_p, src_s, n):
    dst_p[name], dst_s[name] = bn_slice(src_p, src_s, n)

  w0 = arch.width[0]
  params["stem"], stats["stem"] = {"conv": {"kernel": sp_params["stem"]["kernel"][..., :w0]}}, {}
  put_bn(params["stem"], stats["stem"], "bn", sp_params["stem"]["bn"],
         sp_stats["stem"]["bn"], w0)

  for lp in plan_lib.plan(space, arch):
    src, src_s = sp_params[lp.name], sp_stats[lp.name]
    p, s = {}, {}
    if lp.expand:
      p["expand"] = {"kernel": src["expand"][:, :, :lp.c_in, :lp.mid]}
      put_bn(p, s, "expand_bn", src["expand_bn"], src_s["expand_bn"], lp.mid)
    transforms = {k: v for k, v in src.items() if k.startswith("transform_")}
    dw = ops.sized_kernel(src["depthwise"], lp.kernel, space.stages[lp.stage].kernels, transforms)
    p["depthwise"] = {"kernel": dw[..., :lp.mid]}
    put_bn(p, s, "depthwise_bn", src["depthwise_bn"], src_s["depthwise_bn"], lp.mid)
    if lp.se_mid:
      p["se_reduce"] = {"kernel": src["se_reduce"][:, :, :lp.mid, :lp.se_mid],
                        "bias": src["se_reduce_bias"][:lp.se_mid]}
      p["se_expand"] = {"kernel": src["se_expand"][:, :, :lp.se_mid, :lp.mid],
                        "bias": src["se_expand_bias"][:lp.mid]}
    p["project"] = {"kernel": src["project"][:, :, :lp.mid, :lp.c_out]}
    put_bn(p, s, "project_bn", src["project_bn"], src_s["project_bn"], lp.c_out)
    if "conv" in lp.residual:
      p["shortcut"] = {"kernel": src["shortcut"][:, :, :lp.c_in, :lp.c_out]}
    params[lp.name], stats[lp.name] = p, s

  head, head_s = sp_params["head"], sp_stats["head"]
  c_last, c_head = arch.width[-2], arch.width[-1]
  if space.head == "conv":
    params["head"] = {"conv": {"kernel": head["conv"]["kernel"][:, :, :c_last, :c_head]}}
    stats["head"] = {}
    put_bn(params["head"], stats["head"], "bn", head["conv"]["bn"], head_s["conv"]["bn"], c_head)
  else:
    c_exp = plan_lib.head_expand_width(space, arch)
    params["head"] = {
        "final_expand": {"kernel": head["final_expand"]["kernel"][:, :, :c_last, :c_exp]},
        "feature_mix": {"kernel": head["feature_mix"][:, :, :c_exp, :c_head]},
    }
    if space.head_bias:
      params["head"]["feature_mix"]["bias"] = head["feature_mix_bias"][:c_head]
    stats["head"] = {}
    put_bn(params["head"], stats["head"], "final_expand_bn", head["final_expand"]["bn"],
           head_s["final_expand"]["bn"], c_exp)
  params["classifier"] = {"kernel": sp_params["classifier"]["kernel"][:c_head],
                          "bias": sp_params["classifier"]["bias"]}
  model = StaticNet(space, arch, num_classes, **kwargs)
  return model, {"params": params, "batch_stats": stats}

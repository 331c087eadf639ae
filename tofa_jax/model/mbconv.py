"""One elastic inverted-residual (MBConv) layer: its max-size parameters and its
forward pass as a pure function of them.

The layer is plain data (`MBLayer`), not a linen module: the supernet declares a
layer's parameters and BN statistics as one dict each under the layer's name
(`stage{s}_layer{l}`) and runs `MBLayer.run`, so that a stage's repeated layers
can be stacked and run by one `lax.scan` (with remat in the body) while the
parameter tree stays the unscanned one. Width and expansion are channel masks,
depth skips the layer with `lax.cond`, kernel size picks the centre crop (or
OFA's transformed crop) with `lax.switch`.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from tofa_jax.model import elastic_ops as ops
from tofa_jax.space import plan as plan_lib
from tofa_jax.space.search_space import StageSpec, make_divisible

Array = jax.Array
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def mid_channels_max(in_widths: tuple[int, ...], expansions: tuple[float, ...]) -> int:
  """Largest expanded width over every (active input width, expansion) pair."""
  if max(expansions) == 1:
    return max(in_widths)
  return max(make_divisible(round(c * e), 8) for c in in_widths for e in expansions)


def avg_pool_2x2(x: Array) -> Array:
  """AttentiveNAS shortcut pooling: 2x2/2, zero padding 1 on odd sizes, pads counted."""
  pad = 0 if x.shape[2] % 2 == 0 else 1
  x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  s = jax.lax.reduce_window(x, np.zeros((), x.dtype), jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1),
                            "VALID")
  return s / 4.0


def fit_channels(x: Array, size: int) -> Array:
  """Zero-pads or truncates the channel axis to `size`."""
  c = x.shape[-1]
  if c >= size:
    return x[..., :size]
  return jnp.pad(x, ((0, 0),) * (x.ndim - 1) + ((0, size - c),))


def bn_init(size: int) -> tuple[dict, dict]:
  """(parameters, running statistics) of a fresh BatchNorm of `size` channels."""
  return ({"scale": jnp.ones((size,)), "bias": jnp.zeros((size,))},
          {"mean": jnp.zeros((size,)), "var": jnp.ones((size,))})


def bn(x: Array, p: dict, s: dict, mask: Array, train: bool, momentum: float, eps: float,
       axis_name: str | None = None) -> tuple[Array, dict]:
  y, m, v = ops.batch_norm(x, p["scale"], p["bias"], s["mean"], s["var"], mask=mask,
                           train=train, momentum=momentum, eps=eps, axis_name=axis_name)
  return y, {"mean": m, "var": v}


@dataclasses.dataclass(frozen=True)
class MBLayer:
  """One inverted-residual layer with elastic width, expansion, kernel and depth.

  Attributes:
    in_widths: possible active input widths (the previous stage's choices).
    stage: the stage spec.
    first: first layer of its stage (strided, may change width).
    can_skip: the layer is inactive for some depth choice.
    shortcut: 'identity' or 'attentive'.
    axis_name: the mesh axis the batch is split over when run inside
      `shard_map` (drop-connect masks span it), else None.
    bn_axis_name: the axis BN moments span (None: each device's own batch).
  """

  in_widths: tuple[int, ...]
  stage: StageSpec
  first: bool
  can_skip: bool
  shortcut: str
  padding: str
  bn_momentum: float
  bn_eps: float
  depthwise_impl: str
  conditional: bool
  kernel_transform: bool = False
  axis_name: str | None = None
  bn_axis_name: str | None = None

  @property
  def stride(self) -> int:
    return self.stage.stride if self.first else 1

  @property
  def has_residual(self) -> bool:
    """Some subnet adds a residual (so drop-connect applies)."""
    return self.shortcut == "attentive" or not self.first or self.stride == 1

  def _sizes(self) -> tuple[int, int, int, int, int]:
    """(input, expanded, squeeze-excite, output) max widths and the max kernel."""
    st = self.stage
    mid_max = mid_channels_max(self.in_widths, st.expansions)
    return (max(self.in_widths), mid_max, make_divisible(mid_max // 4, 8), max(st.widths),
            max(st.kernels))

  def init_params(self, key: Array) -> dict:
    """Max-size parameters, keyed by the names conversion uses."""
    st = self.stage
    in_max, mid_max, se_max, out_max, k_max = self._sizes()
    keys = iter(jax.random.split(key, 6))
    p = {}
    if max(st.expansions) != 1:
      p["expand"] = conv_init(next(keys), (1, 1, in_max, mid_max))
      p["expand_bn"] = bn_init(mid_max)[0]
    p["depthwise"] = conv_init(next(keys), (k_max, k_max, 1, mid_max))
    if self.kernel_transform:
      sizes = sorted(st.kernels, reverse=True)
      p.update({ops.transform_name(a, b): jnp.eye(b * b)
                for a, b in zip(sizes, sizes[1:], strict=False)})
    p["depthwise_bn"] = bn_init(mid_max)[0]
    if st.se:
      p["se_reduce"] = conv_init(next(keys), (1, 1, mid_max, se_max))
      p["se_reduce_bias"] = jnp.zeros((se_max,))
      p["se_expand"] = conv_init(next(keys), (1, 1, se_max, mid_max))
      p["se_expand_bias"] = jnp.zeros((mid_max,))
    p["project"] = conv_init(next(keys), (1, 1, mid_max, out_max))
    p["project_bn"] = bn_init(out_max)[0]
    if self.shortcut == "attentive" and self.first:
      p["shortcut"] = conv_init(next(keys), (1, 1, in_max, out_max))
    return p

  def init_stats(self) -> dict:
    """Fresh BN running statistics (mean 0, variance 1) of every BN in the layer."""
    _, mid_max, _, out_max, _ = self._sizes()
    s = {"depthwise_bn": bn_init(mid_max)[1], "project_bn": bn_init(out_max)[1]}
    if max(self.stage.expansions) != 1:
      s["expand_bn"] = bn_init(mid_max)[1]
    return s

  def out_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    k_max = max(self.stage.kernels)
    ho, wo = (plan_lib.conv_out_size(n, k_max, self.stride, self.padding) for n in x_shape[1:3])
    return (x_shape[0], ho, wo, max(self.stage.widths))

  def run(self, p: dict, s: dict, x: Array, *, c_in: Array, c_out: Array, kernel: Array,
          expand: Array, active: Array, train: bool, drop_key: Array | None,
          drop_rate: Array | float, rows: Array | None = None) -> tuple[Array, dict]:
    """(output, new BN statistics); an inactive layer passes `x` and `s` through."""
    forward = functools.partial(self._forward, c_in=c_in, c_out=c_out, kernel=kernel,
                                expand=expand, train=train, drop_key=drop_key,
                                drop_rate=drop_rate, rows=rows)
    if not self.can_skip:
      return forward(p, s, x)
    if self.conditional:
      return jax.lax.cond(active, forward, lambda p_, s_, x_: (x_, s_), p, s, x)
    y, new_s = forward(p, s, x)
    return (jnp.where(active, y, x),
            jax.tree.map(lambda n, o: jnp.where(active, n, o), new_s, s))

  def _forward(self, p: dict, s: dict, x: Array, *, c_in, c_out, kernel, expand, train,
               drop_key, drop_rate, rows) -> tuple[Array, dict]:
    st = self.stage
    dt = x.dtype
    out_max = max(st.widths)
    norm = functools.partial(bn, train=train, momentum=self.bn_momentum, eps=self.bn_eps,
                             axis_name=self.bn_axis_name)
    new_s = {}
    if "expand" in p:
      mid = ops.make_divisible(jnp.round(c_in.astype(jnp.float32) * expand))
      m_mid = ops.channel_mask(mid, p["expand"].shape[-1])
      h, new_s["expand_bn"] = norm(ops.pointwise(x, p["expand"]), p["expand_bn"],
                                   s["expand_bn"], m_mid)
      h = ops.activation(st.act, h)
    else:
      mid = c_in
      m_mid = ops.channel_mask(mid, x.shape[-1])
      h = x
    transforms = {k: v for k, v in p.items() if k.startswith("transform_")}
    h = self._depthwise(h, p["depthwise"], transforms or None, kernel)
    h, new_s["depthwise_bn"] = norm(h, p["depthwise_bn"], s["depthwise_bn"], m_mid)
    h = ops.activation(st.act, h)
    if st.se:
      se_mid = ops.make_divisible(mid // 4)
      m_se = ops.channel_mask(se_mid, p["se_reduce"].shape[-1])
      pooled = jnp.mean(h, axis=(1, 2), dtype=jnp.float32)
      r = jax.nn.relu(pooled @ p["se_reduce"][0, 0] + p["se_reduce_bias"]) * m_se
      g = ops.hard_sigmoid(r @ p["se_expand"][0, 0] + p["se_expand_bias"])
      h = h * g.astype(dt)[:, None, None, :]
    m_out = ops.channel_mask(c_out, out_max)
    y, new_s["project_bn"] = norm(ops.pointwise(h, p["project"]), p["project_bn"],
                                  s["project_bn"], m_out)
    residual, has_residual = self._shortcut(x, p, c_in, c_out, m_out)
    if residual is not None:
      if drop_key is not None:
        keep = 1.0 - drop_rate
        keep_mask = ops.batch_bernoulli(drop_key, keep, (y.shape[0], 1, 1, 1), self.axis_name,
                                        rows)
        y = jnp.where(has_residual, y * (keep_mask / keep).astype(dt), y)
      y = y + residual
    return y, new_s

  def _depthwise(self, h: Array, w: Array, transforms: dict | None, kernel: Array) -> Array:
    impl = ops.resolve_depthwise_impl(self.depthwise_impl)
    kernels = self.stage.kernels
    k_max = w.shape[0]

    def conv(k):
      def run(h_, w_, t_):
        return ops.depthwise_conv(h_, ops.sized_kernel(w_, k, kernels, t_).astype(h_.dtype),
                                  self.stride, self.padding, impl)
      return run

    if len(kernels) == 1:
      return conv(k_max)(h, w, transforms)
    if self.conditional:
      index = jnp.argmax(jnp.asarray(kernels) == kernel)
      return jax.lax.switch(index, [conv(k) for k in kernels], h, w, transforms)
    # Pure masking: the active kernel zero-padded to k_max. The crop's centre
    # tap lands on the same input pixel for every k, 'same' padding too.
    def padded(k):
      pad = (k_max - k) // 2
      return jnp.pad(ops.sized_kernel(w, k, kernels, transforms), [(pad, pad)] * 2 + [(0, 0)] * 2)

    w_active = sum(jnp.where(kernel == k, 1.0, 0.0) * padded(k) for k in kernels)
    return conv(k_max)(h, w_active, None)

  def _shortcut(self, x: Array, p: dict, c_in: Array, c_out: Array, m_out: Array
                ) -> tuple[Array | None, Array | bool]:
    """(residual to add or None, whether the layer really is residual)."""
    out_max = m_out.shape[0]
    same_width = c_in == c_out
    if not self.first:
      return x, True
    zero = jnp.zeros((), x.dtype)
    if self.shortcut == "identity":
      if self.stride != 1:
        return None, False
      # Residual only when the active widths agree (a data-dependent choice).
      return jnp.where(same_width, fit_channels(x, out_max), zero), same_width
    pooled = avg_pool_2x2(x) if self.stride > 1 else x
    projected = ops.pointwise(pooled, p["shortcut"]) * m_out.astype(x.dtype)
    return jnp.where(same_width, fit_channels(pooled, out_max), projected), True

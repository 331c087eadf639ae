"""Primitive ops of the elastic supernet: pure functions of arrays.

Masked BatchNorm, activations, channel rounding on traced ints, and the
depthwise convolution (XLA grouped conv, or shift-and-add, which is 4-5x faster
on CPU; both compute the same sums).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from tofa_jax.model import remat
from tofa_jax.space import plan as plan_lib

Array = jax.Array


def activation(name: str, x: Array) -> Array:
  if name == "relu":
    return jax.nn.relu(x)
  if name == "relu6":
    return jax.nn.relu6(x)
  if name == "swish":
    return jax.nn.silu(x)
  if name == "hswish":
    return x * jax.nn.relu6(x + 3.0) / 6.0
  raise ValueError(f"activation {name!r} is unknown; choose relu, relu6, swish or hswish")


def hard_sigmoid(x: Array) -> Array:
  """PyTorch/OFA hard sigmoid: relu6(x + 3) / 6."""
  return jax.nn.relu6(x + 3.0) / 6.0


def make_divisible(v: Array, divisor: int = 8) -> Array:
  """`search_space.make_divisible` on traced values (v >= 0); returns int32."""
  v = jnp.asarray(v, jnp.float32)
  new_v = jnp.maximum(divisor, jnp.floor(v + divisor / 2) // divisor * divisor)
  new_v = jnp.where(new_v < 0.9 * v, new_v + divisor, new_v)
  return new_v.astype(jnp.int32)


def channel_mask(active: Array, size: int, dtype=jnp.float32) -> Array:
  """1.0 for the first `active` channels of `size`, 0.0 after."""
  return (jnp.arange(size) < active).astype(dtype)


def batch_norm(x: Array, scale: Array, bias: Array, mean: Array, var: Array, *,
               mask: Array, train: bool, momentum: float, eps: float,
               axis_name: str | None = None) -> tuple[Array, Array, Array]:
  """BatchNorm over (N, H, W) on the active channels.

  Channels outside `mask` leave the op exactly zero and keep their running
  statistics, as PyTorch dynamic BN does by slicing. Variance is the biased
  batch variance (flax convention). Statistics are f32 whatever `x.dtype`; the
  output has `x.dtype`. Inside `shard_map` over `axis_name`, the moments span the
  global batch (synchronised BN), so N devices compute what one would.

  Returns:
    (y, new_mean, new_var); the statistics are unchanged when not training.
  """
  axes = tuple(range(x.ndim - 1))
  dt = x.dtype
  if train:
    b_mean = jnp.mean(x, axes, dtype=jnp.float32)
    if axis_name is not None:
      b_mean = jax.lax.pmean(b_mean, axis_name)
    b_var = jnp.mean(jnp.square(x.astype(jnp.float32) - b_mean), axes)
    if axis_name is not None:
      b_var = jax.lax.pmean(b_var, axis_name)
    new_mean = jnp.where(mask > 0, momentum * mean + (1 - momentum) * b_mean, mean)
    new_var = jnp.where(mask > 0, momentum * var + (1 - momentum) * b_var, var)
  else:
    b_mean, b_var, new_mean, new_var = mean, var, mean, var
  a = jax.lax.rsqrt(b_var + eps) * scale * mask
  y = (x - b_mean.astype(dt)) * a.astype(dt) + (bias * mask).astype(dt)
  return y, new_mean, new_var


def batch_bernoulli(key: Array, p: Array | float, shape: tuple[int, ...],
                    axis_name: str | None = None, rows: Array | None = None) -> Array:
  """Per-example Bernoulli(p) draws for a batch of `shape` (batch axis first).

  Inside `shard_map` over `axis_name`, `shape` is the local batch: the draws are
  the global batch's, taken at this device's `rows` (global row indices; by
  default its contiguous block), so N devices drop what one would.
  """
  if axis_name is None and rows is None:
    return jax.random.bernoulli(key, p, shape)
  n = shape[0]
  devices = 1 if axis_name is None else jax.lax.axis_size(axis_name)
  full = jax.random.bernoulli(key, p, (n * devices, *shape[1:]))
  if rows is None:
    return jax.lax.dynamic_slice_in_dim(full, jax.lax.axis_index(axis_name) * n, n)
  return full[rows]


def depthwise_conv(x: Array, w: Array, stride: int, padding: str, impl: str = "shift"
                   ) -> Array:
  """Depthwise conv of NHWC `x` with HWIO `w` of shape (k, k, 1, C).

  impl='shift' sums k*k strided slices (fast on CPU; its gradient is written by
  hand, see `_shift_dw_bwd`); impl='lax' is XLA's grouped convolution (fast on
  GPU/TPU). Both compute the same sums.
  """
  k = w.shape[0]
  ph = plan_lib.conv_pads(x.shape[1], k, stride, padding)
  pw = plan_lib.conv_pads(x.shape[2], k, stride, padding)
  if impl == "lax":
    return jax.lax.conv_general_dilated(
        x, w, (stride, stride), (ph, pw), dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=x.shape[-1])
  if impl != "shift":
    raise ValueError(f"model.depthwise_impl={impl!r} is unknown; choose shift, lax or auto")
  return _shift_dw(x, w, stride, ph, pw)


def _valid_shift_sum(z: Array, w: Array, stride: int, ho: int, wo: int) -> Array:
  """sum_ij z[:, i + s*h, j + s*w, :] * w[i, j, 0]: a 'valid' depthwise correlation."""
  k = w.shape[0]
  out = None
  for i in range(k):
    for j in range(k):
      tap = jax.lax.slice(z, (0, i, j, 0),
                          (z.shape[0], i + (ho - 1) * stride + 1, j + (wo - 1) * stride + 1,
                           z.shape[3]), (1, stride, stride, 1))
      term = tap * w[i, j, 0]
      out = term if out is None else out + term
  return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _shift_dw(x: Array, w: Array, stride: int, ph: tuple[int, int], pw: tuple[int, int]
              ) -> Array:
  k = w.shape[0]
  xp = jnp.pad(x, ((0, 0), ph, pw, (0, 0)))
  ho = (xp.shape[1] - k) // stride + 1
  wo = (xp.shape[2] - k) // stride + 1
  return _valid_shift_sum(xp, w, stride, ho, wo)


def _shift_dw_fwd(x, w, stride, ph, pw):
  return _shift_dw(x, w, stride, ph, pw), (x, w)


def _shift_dw_bwd(stride, ph, pw, res, g):
  # XLA's autodiff of the slice-sum is ~50x slower than the forward on CPU.
  # dx: full correlation of the stride-dilated cotangent with the flipped
  # kernel (another forward-style shift-sum). dw: per input row i, one batched
  # matmul over (n, h) gives z[c, v, w] = sum x[n, s*h+i, v, c] g[n, h, w, c];
  # dw[i, j, c] is the sum of z over the diagonal v = s*w + j.
  x, w = res
  k = w.shape[0]
  xp = jnp.pad(x, ((0, 0), ph, pw, (0, 0)))
  hp, wp = xp.shape[1], xp.shape[2]
  ho, wo = g.shape[1], g.shape[2]
  zero = jnp.zeros((), g.dtype)
  gd = jax.lax.pad(g, zero, ((0, 0, 0), (k - 1, hp - (ho - 1) * stride - 1, stride - 1),
                             (k - 1, wp - (wo - 1) * stride - 1, stride - 1), (0, 0, 0)))
  dxp = _valid_shift_sum(gd, w[::-1, ::-1], 1, hp, wp)
  dx = dxp[:, ph[0]:ph[0] + x.shape[1], pw[0]:pw[0] + x.shape[2]]
  diag = np.zeros((k, wp, wo), np.float32)
  for j in range(k):
    diag[j, j + stride * np.arange(wo), np.arange(wo)] = 1.0
  rows = []
  for i in range(k):
    if rows:
      # One row at a time: tying row i's input to row i-1's result lets each
      # row's transposed copy be freed before the next is made (XLA would
      # otherwise make all k at once, k * |x| bytes at the layer's peak).
      xp = remat.after(xp, rows[-1])
    xi = jax.lax.slice(xp, (0, i, 0, 0), (xp.shape[0], i + (ho - 1) * stride + 1, wp,
                                          xp.shape[3]), (1, stride, 1, 1))
    z = jnp.einsum("nhvc,nhwc->cvw", xi, g, preferred_element_type=jnp.float32)
    rows.append(jnp.einsum("cvw,jvw->jc", z, jnp.asarray(diag)))
  dw = jnp.stack(rows)[:, :, None, :]
  return dx, dw.astype(w.dtype)


_shift_dw.defvjp(_shift_dw_fwd, _shift_dw_bwd)


def resolve_depthwise_impl(impl: str) -> str:
  """'auto' picks shift-and-add on CPU and XLA's grouped conv elsewhere."""
  if impl == "auto":
    return "shift" if jax.default_backend() == "cpu" else "lax"
  return impl


def pointwise(x: Array, w: Array) -> Array:
  """1x1 conv as a matmul; `w` is HWIO (1, 1, Cin, Cout)."""
  return jnp.einsum("nhwc,cd->nhwd", x, w[0, 0].astype(x.dtype))


def transform_name(src: int, dst: int) -> str:
  """Parameter name of OFA's `{src}to{dst}` kernel-transform matrix."""
  return f"transform_{src}to{dst}"


def centre_crop(w: Array, k: int) -> Array:
  start = (w.shape[0] - k) // 2
  return w[start:start + k, start:start + k]


def sized_kernel(w: Array, k: int, kernels: tuple[int, ...],
                 transforms: dict[str, Array] | None = None) -> Array:
  """The k x k depthwise kernel of a layer whose max kernel is `w` (HWIO).

  Without `transforms` this is the centre crop. With them (OFA), each step down
  the sorted kernel choices crops the centre of the current kernel and maps its
  taps with that step's (t*t, t*t) matrix M: per channel, new = M @ taps, as
  OFA's `F.linear(taps, M)` on row vectors does.
  """
  if not transforms:
    return centre_crop(w, k)
  sizes = sorted(kernels, reverse=True)
  for src, dst in zip(sizes, sizes[1:], strict=False):
    if src <= k:
      break
    crop = centre_crop(w, dst)
    flat = crop.reshape(dst * dst, -1)
    w = (transforms[transform_name(src, dst)] @ flat).reshape(crop.shape)
  return w

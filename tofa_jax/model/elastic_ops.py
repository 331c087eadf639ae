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

from tofa_jax.space import plan as plan_lib

DEPTHWISE_IMPLS = ("auto", "shift", "lax")  # model.depthwise_impl; auto: resolve_depthwise_impl
BN_SYNC = ("global", "device")  # model.bn_sync

Array = jax.Array


@jax.custom_jvp
def _swish(x: Array) -> Array:
  return jax.nn.silu(x)


@_swish.defjvp
def _swish_jvp(primals, tangents):
  # The derivative as one function of x, so a backward pass keeps one tensor
  # per swish (autodiff of x * sigmoid(x) keeps x and sigmoid(x)).
  (x,), (dx,) = primals, tangents
  sig = jax.nn.sigmoid(x)
  return x * sig, dx * (sig * (1 + x * (1 - sig)))


@jax.custom_jvp
def _hswish(x: Array) -> Array:
  return x * jax.nn.relu6(x + 3.0) / 6.0


@_hswish.defjvp
def _hswish_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  # relu6's convention at its kinks (derivative 0 at x + 3 in {0, 6}).
  slope = jnp.where(x <= -3.0, 0.0, jnp.where(x >= 3.0, 1.0, (2.0 * x + 3.0) / 6.0))
  return _hswish(x), dx * slope.astype(x.dtype)


def activation(name: str, x: Array) -> Array:
  if name == "relu":
    return jax.nn.relu(x)
  if name == "relu6":
    return jax.nn.relu6(x)
  if name == "swish":
    return _swish(x)
  if name == "hswish":
    return _hswish(x)
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

  The two moments are taken about a shift s, the running mean (a constant to
  autodiff), as one vector [E[x - s], E[(x - s)^2]]: one all-reduce per call
  over `axis_name`, and one for its transpose in the backward pass. Then
  var = E[(x - s)^2] - E[x - s]^2, the same value in exact arithmetic, and the
  gradients are those of the two-pass formula. In f32 the cancellation loses
  about ((mean - s) / std)^2 ulps of the variance: measured over 3,136 values a
  channel, the relative error is 1e-7 (the two-pass figure) with s at the batch
  mean, 1.4e-6 at 3 std off, 2e-5 at 10 and 4e-4 at 40
  (tests/model/elastic_ops_test.py). The running mean tracks the batch mean,
  so only a fresh or badly stale running mean costs digits.

  Returns:
    (y, new_mean, new_var); the statistics are unchanged when not training.
  """
  axes = tuple(range(x.ndim - 1))
  dt = x.dtype
  if train:
    shift = jax.lax.stop_gradient(mean).astype(dt)
    # The moments and the output both read x - s (the output less a
    # per-channel constant, an elementwise op XLA fuses), so a backward pass
    # keeps one image-sized tensor per BN, not also x.
    shifted = x - shift
    wide = shifted.astype(jnp.float32)
    moments = jnp.concatenate([jnp.mean(wide, axes), jnp.mean(jnp.square(wide), axes)])
    if axis_name is not None:
      moments = jax.lax.pmean(moments, axis_name)
    offset, second = jnp.split(moments, 2)
    b_mean = shift.astype(jnp.float32) + offset
    b_var = jnp.maximum(second - jnp.square(offset), 0.0)
    centred = shifted - offset.astype(dt)
    new_mean = jnp.where(mask > 0, momentum * mean + (1 - momentum) * b_mean, mean)
    new_var = jnp.where(mask > 0, momentum * var + (1 - momentum) * b_var, var)
  else:
    centred = x - mean.astype(dt)
    b_var, new_mean, new_var = var, mean, var
  a = jax.lax.rsqrt(b_var + eps) * scale * mask
  y = centred * a.astype(dt) + (bias * mask).astype(dt)
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
    raise ValueError(f"model.depthwise_impl={impl!r} is unknown; choose one of "
                     f"{list(DEPTHWISE_IMPLS)}")
  return _shift_dw(x, w, stride, ph, pw)


def _valid_shift_sum(z: Array, w: Array, stride: int, ho: int, wo: int) -> Array:
  """sum_ij z[:, i + s*h, j + s*w, :] * w[i, j, 0]: a 'valid' depthwise correlation."""
  out = None
  for i in range(w.shape[0]):
    for j in range(w.shape[1]):
      term = tap(z, i, j, stride, ho, wo) * w[i, j, 0]
      out = term if out is None else out + term
  return out


def tap(z: Array, i: int, j: int, stride: int, ho: int, wo: int) -> Array:
  """z[:, i + s*h, j + s*w, :] for h < ho, w < wo: what kernel tap (i, j) sees."""
  return jax.lax.slice(z, (0, i, j, 0), (z.shape[0], i + (ho - 1) * stride + 1,
                                         j + (wo - 1) * stride + 1, z.shape[3]),
                       (1, stride, stride, 1))


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


def _shift_sum_transpose(g: Array, w: Array, stride: int, hp: int, wp: int) -> Array:
  """The (hp, wp) input cotangent of `_valid_shift_sum(., w, stride, ho, wo)` at `g`.

  Polyphase: input row s*q + a only meets taps i = a + s*m, so each of the s*s
  phases (a, b) is a full stride-1 correlation of `g` with w[a::s, b::s] flipped,
  and the phases interleave into the result. Unlike correlating a stride-dilated
  `g`, this never makes an (hp, wp)-sized copy of the cotangent: at stride 2 that
  copy was the largest buffer of the whole step.
  """
  ho, wo = g.shape[1], g.shape[2]
  hq, wq = -(-hp // stride), -(-wp // stride)
  zero = jnp.zeros((), g.dtype)
  rows = []
  for a in range(stride):
    cols = []
    for b in range(stride):
      sub = w[a::stride, b::stride]
      km, kn = sub.shape[0], sub.shape[1]
      gp = jax.lax.pad(g, zero, ((0, 0, 0), (km - 1, hq - ho, 0), (kn - 1, wq - wo, 0),
                                 (0, 0, 0)))
      cols.append(_valid_shift_sum(gp, sub[::-1, ::-1], 1, hq, wq))
    rows.append(jnp.stack(cols, axis=3))  # (n, hq, wq, s, c)
  phased = jnp.stack(rows, axis=2)  # (n, hq, s, wq, s, c)
  n, c = g.shape[0], g.shape[3]
  return phased.reshape(n, hq * stride, wq * stride, c)[:, :hp, :wp]


def _shift_dw_bwd(stride, ph, pw, res, g):
  # XLA's autodiff of the slice-sum is ~50x slower than the forward on CPU.
  # dx: per output phase, a full correlation of the cotangent with the flipped
  # strided sub-kernel (forward-style shift-sums, `_shift_sum_transpose`).
  # dw: per kernel row i, one batched matmul over (n, h) gives
  # z[c, v, w] = sum x_p[n, s*h+i, v, c] g[n, h, w, c] (x_p: x padded by ph rows);
  # dw[i, j, c] is the sum of z over the diagonal v = s*w + j - pw. x_p and g are
  # put channel-major once, before a scan over the rows: unrolled, XLA fused the
  # transpose into every row's slice, and those k transposes took 3x the matmuls'
  # time at 128 px (benchmarks/step_profile.py). The scan also keeps one row's
  # slice alive at a time.
  x, w = res
  k = w.shape[0]
  n, h_in, w_in, c = x.shape
  ho, wo = g.shape[1], g.shape[2]
  hp, wp = h_in + sum(ph), w_in + sum(pw)
  dx = _shift_sum_transpose(g, w, stride, hp, wp)[:, ph[0]:ph[0] + h_in, pw[0]:pw[0] + w_in]
  diag = np.zeros((k, w_in, wo), np.float32)
  for j in range(k):
    v = j + stride * np.arange(wo) - pw[0]
    inside = (v >= 0) & (v < w_in)
    diag[j, v[inside], np.arange(wo)[inside]] = 1.0
  xt = jnp.transpose(jnp.pad(x, ((0, 0), ph, (0, 0), (0, 0))), (3, 2, 0, 1))  # (c,w,n,hp)
  gt = jnp.transpose(g, (3, 2, 0, 1)).reshape(c, wo, n * ho)
  span = (ho - 1) * stride + 1

  def row(_, i):
    xi = jax.lax.dynamic_slice_in_dim(xt, i, span, axis=3)[..., ::stride]
    z = jnp.einsum("cvm,cwm->cvw", xi.reshape(c, w_in, n * ho), gt,
                   preferred_element_type=jnp.float32)
    return None, jnp.einsum("cvw,jvw->jc", z, jnp.asarray(diag))

  _, rows = jax.lax.scan(row, None, jnp.arange(k))
  dw = rows[:, :, None, :]
  return dx, dw.astype(w.dtype)


_shift_dw.defvjp(_shift_dw_fwd, _shift_dw_bwd)


def resolve_depthwise_impl(impl: str) -> str:
  """'auto' picks shift-and-add on CPU and XLA's grouped conv elsewhere."""
  if impl == "auto":
    return "shift" if jax.default_backend() == "cpu" else "lax"
  return impl


def patch_conv(x: Array, w: Array, stride: int, ph: tuple[int, int], pw: tuple[int, int]
               ) -> Array:
  """The k x k conv of NHWC `x` with HWIO `w` (padding `ph`, `pw`) as one matmul: the
  k*k strided slices side by side on the channel axis, in `w`'s (h, w, in) order.
  Meant for few input channels (the stem's 3), where the patches stay small."""
  k = w.shape[0]
  xp = jnp.pad(x, ((0, 0), ph, pw, (0, 0)))
  ho = (xp.shape[1] - k) // stride + 1
  wo = (xp.shape[2] - k) // stride + 1
  taps = [tap(xp, i, j, stride, ho, wo) for i in range(k) for j in range(k)]
  return jnp.einsum("nhwp,pd->nhwd", jnp.concatenate(taps, axis=3),
                    w.reshape(-1, w.shape[3]))


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

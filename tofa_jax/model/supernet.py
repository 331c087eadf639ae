"""The elastic MBConv supernet: one linen module, every subnet by masking.

`Supernet.apply(variables, images, arch, train=...)` runs the subnet described
by `arch` (the arrays of `arch.to_arrays`) on max-size weights. Width and
expansion are channel masks; depth skips layers with `lax.cond` and kernel size
picks the centre crop of the max kernel (optionally OFA's transformed crop) with
`lax.switch`, so small subnets cost less while one program serves every subnet
at a given resolution.

The supernet declares each MBConv layer's max-size parameters and statistics as
one dict under `stage{s}_layer{l}` and computes with the pure `mbconv.MBLayer`
functions of those arrays. That is what lets `lax.cond`/`lax.switch` run over
them (flax's lifted `nn.cond` needs identical variables in every branch), and
what lets `remat='scan'|'layer'` stack a stage's repeated layers on the fly into
one `lax.scan` while the parameter tree stays the same.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from tofa_jax.model import elastic_ops as ops
from tofa_jax.model import mbconv, remat
from tofa_jax.space import plan as plan_lib
from tofa_jax.space import sampling
from tofa_jax.space.search_space import SearchSpace, StageSpec

Array = jax.Array
conv_init = mbconv.conv_init


REMAT = ("none", "scan", "layer")
REMAT_SETTINGS = (*REMAT, "auto")  # train.remat; auto is resolved by the train loop
CONDITIONAL = ("auto", "on", "off")  # model.conditional


def _declare_bn(mdl: nn.Module, name: str, size: int) -> tuple[dict, nn.Variable]:
  p = mdl.param(name, lambda _: mbconv.bn_init(size)[0])
  s = mdl.variable("batch_stats", name, lambda: mbconv.bn_init(size)[1])
  return p, s


class ConvBN(nn.Module):
  """k x k conv (stem) or 1x1 conv (head) + BN + activation, elastic output width."""

  in_max: int
  out_max: int
  kernel: int
  stride: int
  act: str
  padding: str
  bn_momentum: float
  bn_eps: float
  axis_name: str | None = None
  patches: bool = False  # the k x k conv as one matmul over image patches (CPU)

  @nn.compact
  def __call__(self, x: Array, c_out: Array, train: bool) -> Array:
    w = self.param("kernel", conv_init, (self.kernel, self.kernel, self.in_max, self.out_max))
    bn_p, bn_s = _declare_bn(self, "bn", self.out_max)
    ph = plan_lib.conv_pads(x.shape[1], self.kernel, self.stride, self.padding)
    pw = plan_lib.conv_pads(x.shape[2], self.kernel, self.stride, self.padding)
    if self.kernel == 1 and self.stride == 1:
      # A matmul, as the blocks' 1x1 convs: XLA CPU's convolution took 0.3 s of a
      # 5.5 s sandwich step at 128 px for the head's 4x4 pixels (its weight gradient).
      y = ops.pointwise(x, w)
    elif self.patches:
      # The stem's weight gradient as XLA CPU's convolution took 0.17 s of that step.
      y = ops.patch_conv(x, w.astype(x.dtype), self.stride, ph, pw)
    else:
      y = jax.lax.conv_general_dilated(x, w.astype(x.dtype), (self.stride,) * 2, (ph, pw),
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    mask = ops.channel_mask(c_out, self.out_max)
    y, new_s = mbconv.bn(y, bn_p, bn_s.value, mask, train, self.bn_momentum, self.bn_eps,
                         self.axis_name)
    if train and not self.is_initializing():
      bn_s.value = new_s
    return ops.activation(self.act, y)


class Head(nn.Module):
  """MobileNetV3 'v3' head (expand, pool, feature mix) or EfficientNet 'conv' head.
  Features come out f32 (pooling accumulates in f32)."""

  space: SearchSpace
  bn_momentum: float
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: Array, c_last: Array, c_head: Array, train: bool) -> Array:
    sp = self.space
    last_max, head_max = max(sp.stages[-1].widths), max(sp.head_widths)
    if sp.head == "conv":
      x = ConvBN(last_max, head_max, 1, 1, sp.head_act, sp.padding, self.bn_momentum,
                 sp.bn_eps, self.axis_name, name="conv")(x, c_head, train)
      return jnp.mean(x, axis=(1, 2), dtype=jnp.float32)
    exp_max = round(last_max * sp.head_expand)
    c_exp = jnp.round(c_last.astype(jnp.float32) * sp.head_expand).astype(jnp.int32)
    x = ConvBN(last_max, exp_max, 1, 1, sp.head_act, sp.padding, self.bn_momentum, sp.bn_eps,
               self.axis_name, name="final_expand")(x, c_exp, train)
    pooled = jnp.mean(x, axis=(1, 2), dtype=jnp.float32)
    w = self.param("feature_mix", conv_init, (1, 1, exp_max, head_max))
    y = pooled @ w[0, 0]
    if sp.head_bias:
      y = y + self.param("feature_mix_bias", nn.initializers.zeros, (head_max,))
    y = ops.activation(sp.head_act, y)
    return y * ops.channel_mask(c_head, head_max)


class Supernet(nn.Module):
  """Weight-sharing supernet of `space`; the subnet is the `arch` argument.

  Attributes:
    space: the search space.
    num_classes: classifier outputs.
    dropout_rate: dropout before the classifier (train only).
    drop_connect_rate: stochastic depth of residual layers, scaled linearly
      with layer index (EfficientNet style).
    bn_momentum: running-average momentum (flax convention: 0.9 keeps 90%).
    depthwise_impl: 'shift', 'lax' or 'auto' (shift on CPU, lax elsewhere); 'shift'
      also runs the stem's conv as a matmul over patches (`ops.patch_conv`).
    conditional: skip inactive layers and pick kernels with lax.cond/switch
      (False: pure masking; same outputs, max-subnet cost for every subnet).
    remat: 'none' runs every layer in line; 'scan' runs each stage's layers
      after the first as one `lax.scan` (one compiled body per stage); 'layer'
      also rematerialises every MBConv layer in the backward pass, keeping only
      layer inputs (MaxText's scan_layers + remat_policy). Outputs and the
      parameter tree are the same for all three.
    dtype: activations and convolutions; parameters, BN statistics, pooled
      features and logits stay f32.
    axis_name: the mesh axis the batch is split over when applied inside
      `shard_map`: dropout masks, and with bn_sync 'global' BN moments, then
      span the global batch.
    bn_sync: 'global' (BN moments over `axis_name`: N devices compute what one
      would) or 'device' (each device's own batch, no collective inside BN, as
      PyTorch DDP without SyncBN).
  """

  space: SearchSpace
  num_classes: int
  dropout_rate: float = 0.0
  drop_connect_rate: float = 0.0
  bn_momentum: float = 0.9
  depthwise_impl: str = "auto"
  conditional: bool = True
  remat: str = "none"
  dtype: Any = jnp.float32
  axis_name: str | None = None
  bn_sync: str = "global"

  def __post_init__(self):
    if self.remat not in REMAT:
      raise ValueError(f"train.remat={self.remat!r} is unknown; choose one of {list(REMAT)}")
    if self.bn_sync not in ops.BN_SYNC:
      raise ValueError(f"model.bn_sync={self.bn_sync!r} is unknown; choose one of "
                       f"{list(ops.BN_SYNC)}")
    super().__post_init__()

  @property
  def bn_axis_name(self) -> str | None:
    """The axis BN moments span: `axis_name` when synchronised, else none."""
    return self.axis_name if self.bn_sync == "global" else None

  @nn.compact
  def __call__(self, images: Array, arch: dict[str, Array], *, train: bool,
               resolution: int | None = None, rows: Array | None = None) -> Array:
    """Logits (f32) of the subnet `arch` for NHWC `images`.

    Args:
      images: (N, H, W, 3) float images; resized to `resolution` if it differs.
      arch: dict of arrays from `arch.to_arrays` (width, depth, kernel, expand).
      train: batch statistics and dropout (update `batch_stats` with mutable).
      resolution: the active resolution (static: one program per resolution).
      rows: each image's row in the global batch, when a `shard_map`ped step
        holds a device's share of several concatenated views; dropout and
        drop-connect masks follow the row, not the device layout.
    """
    sp = self.space
    if resolution is not None and images.shape[1:3] != (resolution, resolution):
      images = jax.image.resize(images, (images.shape[0], resolution, resolution,
                                         images.shape[3]), method="bicubic")
    width = arch["width"]
    x = ConvBN(3, max(sp.stem_widths), 3, 2, sp.stem_act, sp.padding, self.bn_momentum,
               sp.bn_eps, self.bn_axis_name, name="stem",
               patches=ops.resolve_depthwise_impl(self.depthwise_impl) == "shift")(
                   images.astype(self.dtype), width[0], train)
    in_widths, c_in = sp.stem_widths, width[0]
    layer_idx = 0
    for s, st in enumerate(sp.stages):
      x = self._stage(s, x, in_widths, c_in, arch, layer_idx, train, rows)
      layer_idx += st.max_depth
      in_widths, c_in = st.widths, width[s + 1]
    features = Head(sp, self.bn_momentum, self.bn_axis_name, name="head")(x, c_in, width[-1],
                                                                       train)
    if train and self.dropout_rate > 0:
      keep = 1.0 - self.dropout_rate
      mask = ops.batch_bernoulli(self.make_rng("dropout"), keep, features.shape, self.axis_name,
                                 rows)
      features = jnp.where(mask, features / keep, 0.0)
    return nn.Dense(self.num_classes, name="classifier")(features)

  def _layer(self, st: StageSpec, in_widths: tuple[int, ...], first: bool, can_skip: bool
             ) -> mbconv.MBLayer:
    sp = self.space
    return mbconv.MBLayer(
        in_widths=in_widths, stage=st, first=first, can_skip=can_skip, shortcut=sp.shortcut,
        padding=sp.padding, bn_momentum=self.bn_momentum, bn_eps=sp.bn_eps,
        depthwise_impl=self.depthwise_impl, conditional=self.conditional,
        kernel_transform=sp.kernel_transform, axis_name=self.axis_name,
        bn_axis_name=self.bn_axis_name)

  def _stage(self, s: int, x: Array, in_widths: tuple[int, ...], c_in: Array,
             arch: dict[str, Array], layer_idx: int, train: bool, rows: Array | None
             ) -> Array:
    """Stage `s`'s layers: the first in line, the others in line or scanned."""
    sp, st = self.space, self.space.stages[s]
    # A one-trip loop is inlined by XLA, which undoes the remat inside it.
    scanned = self.remat != "none" and st.max_depth > 2
    # Layers after the first share one spec in a scan (any of them may skip);
    # in line, only those at or past the smallest depth can.
    specs = [self._layer(st, in_widths if layer == 0 else st.widths, layer == 0,
                         layer >= (1 if scanned else min(st.depths)))
             for layer in range(st.max_depth)]
    first, rest = specs[0], specs[-1]
    params, stats, keys, rates = [], [], [], []
    for layer, spec in enumerate(specs):
      name = f"stage{s}_layer{layer}"
      params.append(self.param(name, spec.init_params))
      stats.append(self.variable("batch_stats", name, spec.init_stats))
      rates.append(self.drop_connect_rate * (layer_idx + layer) / sp.n_layers)
      keys.append(self.make_rng("dropout") if train and rates[-1] > 0 and spec.has_residual
                  else None)
    if self.is_initializing():
      # Parameter shapes depend on the space only; skip tracing the layer math
      # (it dominates init's compile time) and return the output's shape.
      return jnp.zeros(rest.out_shape(first.out_shape(x.shape)), x.dtype)

    c_out = arch["width"][s + 1]
    kernels, expands = arch["kernel"][s, :st.max_depth], arch["expand"][s, :st.max_depth]
    actives = jnp.arange(st.max_depth) < arch["depth"][s]

    def run(spec, p, stat, h, c, k, e, a, key, r):
      fn = functools.partial(_run, spec, train)
      if self.remat == "layer":
        fn = remat.recompute(fn)
      return fn((p, h), (stat, c, c_out, k, e, a, key, r, rows))

    x, new_first = run(first, params[0], stats[0].value, x, c_in, kernels[0], expands[0],
                       actives[0], keys[0], rates[0])
    new_stats, outputs = [new_first], [x]
    if not scanned:
      for layer in range(1, st.max_depth):
        x, new = run(specs[layer], params[layer], stats[layer].value, x, c_out, kernels[layer],
                     expands[layer], actives[layer], keys[layer], rates[layer])
        new_stats.append(new)
        outputs.append(x)
    else:
      stack = lambda trees: jax.tree.map(lambda *a: jnp.stack(a), *trees)  # noqa: E731
      capture = self.is_mutable_collection("intermediates")

      def body(h, xs):
        p, s_, k, e, a, key, r = xs
        h, new = run(rest, p, s_, h, c_out, k, e, a, key, r)
        return h, (new, h if capture else None)

      xs = (stack(params[1:]), stack([v.value for v in stats[1:]]), kernels[1:], expands[1:],
            actives[1:], None if keys[1] is None else jnp.stack(keys[1:]),
            jnp.asarray(rates[1:], jnp.float32))
      x, (stacked, ys) = jax.lax.scan(body, x, xs)
      for i in range(st.max_depth - 1):
        new_stats.append(jax.tree.map(lambda a, i=i: a[i], stacked))
        outputs.append(None if ys is None else ys[i])
    for layer, y in enumerate(outputs):
      if y is not None:
        self.sow("intermediates", f"stage{s}_layer{layer}", y)
    if train:
      for var, new in zip(stats, new_stats, strict=True):
        var.value = new
    return x


def _run(spec: mbconv.MBLayer, train: bool, diff: tuple, const: tuple) -> tuple[Array, dict]:
  """One layer as `f((params, x), constants)`, the form `remat.recompute` takes."""
  p, x = diff
  s, c_in, c_out, kernel, expand, active, key, rate, rows = const
  return spec.run(p, s, x, c_in=c_in, c_out=c_out, kernel=kernel, expand=expand,
                  active=active, train=train, drop_key=key, drop_rate=rate, rows=rows)


def build(space: SearchSpace, num_classes: int, **kwargs) -> Supernet:
  return Supernet(space=space, num_classes=num_classes, **kwargs)


def init_variables(model: Supernet, seed: int = 0, resolution: int | None = None) -> dict:
  """Max-size variables ({'params', 'batch_stats'}) drawn on the host.

  `model.init` would compile one RNG kernel per parameter (tens of seconds on
  CPU for the real spaces), so the structure comes from `jax.eval_shape` and
  the values from NumPy, with the modules' own scheme: He-normal (fan-out)
  conv kernels, LeCun-normal classifier, zero biases, BN scale 1 / bias 0,
  running mean 0 / variance 1.
  """
  from tofa_jax.space import arch as arch_lib

  sp = model.space
  res = resolution or max(sp.resolutions)
  arrays = arch_lib.to_arrays(sp, sampling.max_arch(sp))
  images = jnp.zeros((1, res, res, 3), jnp.float32)
  shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                          images, arrays)
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    keys = [getattr(k, "key", str(k)) for k in path]
    shape, name = leaf.shape, keys[-1]
    if name.startswith("transform_"):
      return np.eye(shape[0], dtype=np.float32)
    if keys[0] == "batch_stats":
      return np.ones(shape, np.float32) if name == "var" else np.zeros(shape, np.float32)
    if name == "scale":
      return np.ones(shape, np.float32)
    if name == "bias" or name.endswith("_bias"):
      return np.zeros(shape, np.float32)
    if keys[-2:] == ["classifier", "kernel"]:
      return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)
    fan_out = shape[0] * shape[1] * shape[3]  # HWIO conv kernel
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_out)).astype(np.float32)

  return jax.tree.map(jnp.asarray, jax.tree_util.tree_map_with_path(fill, shapes))


DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
GPU_BACKENDS = ("gpu", "cuda", "rocm")
# AMD GPUs with bf16 matrix units (MI100, MI200, MI300, MI350); ROCm names the
# architecture where CUDA gives a compute capability.
ROCM_BF16_ARCHS = ("gfx908", "gfx90a", "gfx940", "gfx941", "gfx942", "gfx950")


def native_bf16(device) -> bool:
  """Whether `device` computes bf16 natively: a TPU, an NVIDIA GPU of compute
  capability 8.0 or more (Ampere on), or an AMD GPU in ROCM_BF16_ARCHS. Elsewhere
  (CPU, T4, V100) XLA emulates bf16 in f32 at a cost, so f32 is the faster choice."""
  if device.platform == "tpu":
    return True
  if device.platform not in GPU_BACKENDS:
    return False
  capability = str(getattr(device, "compute_capability", ""))
  if capability.startswith("gfx"):
    return capability.split(":")[0] in ROCM_BF16_ARCHS
  try:
    major = int(capability.split(".")[0])
  except ValueError:
    return False
  return major >= 8


def resolve_dtype(name: str) -> Any:
  """`model.dtype`: float32, bfloat16, or auto (bf16 where `native_bf16` holds for
  the first device, else f32)."""
  if name == "auto":
    return jnp.bfloat16 if native_bf16(jax.devices()[0]) else jnp.float32
  if name not in DTYPES:
    raise ValueError(f"model.dtype={name!r} is unknown; choose one of {[*DTYPES, 'auto']}")
  return DTYPES[name]


def resolve_conditional(mode: str, backend: str | None = None) -> bool:
  """`model.conditional`: on (lax.cond/switch), off (masks) or auto: off on GPU,
  where XLA copies each conditional's predicate to the host and waits for the
  stream, on elsewhere (TPUs and CPUs branch without a host round-trip).
  `backend` (cpu, cuda, rocm, tpu, ...) defaults to JAX's default backend."""
  if mode not in CONDITIONAL:
    raise ValueError(f"model.conditional={mode!r} is unknown; choose one of {list(CONDITIONAL)}")
  if mode == "auto":
    return (backend or jax.default_backend()) not in GPU_BACKENDS
  return mode == "on"


def from_config(config, space: SearchSpace, num_classes: int) -> Supernet:
  """The supernet a run's config trains: `model.*` and `train.remat`."""
  return Supernet(space=space, num_classes=num_classes,
                  dropout_rate=config.model.dropout_rate,
                  drop_connect_rate=config.model.drop_connect_rate,
                  depthwise_impl=config.model.depthwise_impl,
                  conditional=resolve_conditional(config.model.conditional),
                  bn_sync=config.model.bn_sync,
                  remat=config.train.remat, dtype=resolve_dtype(config.model.dtype))

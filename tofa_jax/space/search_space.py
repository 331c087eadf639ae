"""Search spaces as data: stage tables of elastic MBConv supernets.

A `SearchSpace` is a frozen description of the maximal network and of the
choices each elastic dimension may take. Everything else (the supernet module,
samplers, FLOPs counting, static extraction) reads it; nothing is hard-coded
per space. Spaces are selected by name (`get_space`) or built from a config
(`space_from_config`), so users can define their own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

ACTIVATIONS = ("relu", "relu6", "swish", "hswish")
SHORTCUTS = ("identity", "attentive")
HEADS = ("v3", "conv")
PADDINGS = ("symmetric", "same")


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
  """OFA/AttentiveNAS channel rounding (Python ints; see elastic_ops for jnp)."""
  min_value = divisor if min_value is None else min_value
  new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
  if new_v < 0.9 * v:
    new_v += divisor
  return new_v


@dataclasses.dataclass(frozen=True)
class StageSpec:
  """One block group: `depth` MBConv layers, the first one strided.

  Attributes:
    widths: output channel choices.
    depths: number-of-layers choices.
    kernels: depthwise kernel size choices.
    expansions: expansion ratio choices (1 means no expand conv).
    stride: stride of the first layer of the stage.
    se: whether layers carry squeeze-and-excitation (reduction 4, hard-sigmoid).
    act: activation, one of ACTIVATIONS.
  """

  widths: tuple[int, ...]
  depths: tuple[int, ...]
  kernels: tuple[int, ...]
  expansions: tuple[float, ...]
  stride: int
  se: bool
  act: str

  @property
  def max_depth(self) -> int:
    return max(self.depths)


@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """A supernet: stem conv, elastic MBConv stages, head, linear classifier.

  Attributes:
    name: registry name.
    stem_widths: channel choices of the 3x3 stride-2 stem conv.
    stem_act: stem activation.
    stages: the elastic MBConv stages.
    head_widths: choices of the last width entry. For `head='v3'` this is the
      feature-mix 1x1 conv applied after pooling (no BN); for `head='conv'` it is
      the 1x1 conv + BN + act applied before pooling (EfficientNet `conv_head`).
    head_act: head activation.
    head_expand: v3 head only: the final-expand 1x1 conv has
      `last_stage_width * head_expand` channels.
    head: 'v3' (MobileNetV3/AttentiveNAS MBPool) or 'conv' (EfficientNet).
    resolutions: input resolution choices.
    per_layer: kernel and expansion are chosen per layer (OFA) rather than once
      per stage (TOFA, AttentiveNAS).
    shortcut: 'identity' (residual only when stride 1 and widths agree) or
      'attentive' (AttentiveNAS: 2x2 avg-pool and/or 1x1 conv otherwise).
    padding: 'symmetric' (PyTorch k//2) or 'same' (TensorFlow SAME).
    mflops_window: (low, high) MFLOPs that random samples must fall into, or None.
    bn_eps: BatchNorm epsilon.
    kernel_transform: OFA's kernel transformation: a smaller kernel is the
      centre crop of the next larger one multiplied by a learned (k*k, k*k)
      matrix per layer (`transform_7to5`, `transform_5to3`), identity at init.
    head_bias: v3 head only: the feature-mix layer has a bias (torchvision's
      MobileNetV3 `classifier.0`).
  """

  name: str
  stem_widths: tuple[int, ...]
  stem_act: str
  stages: tuple[StageSpec, ...]
  head_widths: tuple[int, ...]
  head_act: str
  head_expand: float = 6.0
  head: str = "v3"
  resolutions: tuple[int, ...] = (224,)
  per_layer: bool = False
  shortcut: str = "attentive"
  padding: str = "symmetric"
  mflops_window: tuple[float, float] | None = None
  bn_eps: float = 1e-5
  kernel_transform: bool = False
  head_bias: bool = False

  def __post_init__(self):
    _check_choice("space.head", self.head, HEADS)
    _check_choice("space.shortcut", self.shortcut, SHORTCUTS)
    _check_choice("space.padding", self.padding, PADDINGS)
    _check_choice("space.stem_act", self.stem_act, ACTIVATIONS)
    _check_choice("space.head_act", self.head_act, ACTIVATIONS)
    for i, st in enumerate(self.stages):
      _check_choice(f"space.stages[{i}].act", st.act, ACTIVATIONS)
      for field in ("widths", "depths", "kernels", "expansions"):
        if not getattr(st, field):
          raise ValueError(f"space.stages[{i}].{field} must not be empty")
      if min(st.depths) < 1:
        raise ValueError(f"space.stages[{i}].depths must be >= 1, got {st.depths}")
      if any(k % 2 == 0 for k in st.kernels):
        raise ValueError(f"space.stages[{i}].kernels must be odd, got {st.kernels}")
    if self.mflops_window is not None and self.mflops_window[0] > self.mflops_window[1]:
      raise ValueError(f"space.mflops_window must be (low, high), got {self.mflops_window}")

  @property
  def n_stages(self) -> int:
    return len(self.stages)

  @property
  def max_depth(self) -> int:
    return max(st.max_depth for st in self.stages)

  @property
  def n_layers(self) -> int:
    return sum(st.max_depth for st in self.stages)

  @property
  def width_choices(self) -> tuple[tuple[int, ...], ...]:
    """Choices for every entry of `Arch.width`: stem, stages, head."""
    return (self.stem_widths, *(st.widths for st in self.stages), self.head_widths)


def _check_choice(key: str, value: Any, allowed: Sequence[Any]) -> None:
  if value not in allowed:
    raise ValueError(f"{key}={value!r} is not allowed; choose one of {list(allowed)}")


def _stage(widths, depths, kernels, expansions, stride, se, act) -> StageSpec:
  return StageSpec(tuple(widths), tuple(depths), tuple(kernels),
                   tuple(float(e) for e in expansions), stride, se, act)


def _tofa() -> SearchSpace:
  # TOFA Table 1 (section 3.3). Strides and SE placement follow AttentiveNAS,
  # whose layout TOFA reuses; activation is swish as in AttentiveNAS.
  s = lambda *a: _stage(*a, act="swish")  # noqa: E731
  return SearchSpace(
      name="tofa",
      stem_widths=(16, 24), stem_act="swish",
      stages=(
          s((16, 24), (1, 2), (3, 5), (1,), 1, False),
          s((24, 32), (3, 4, 5), (3, 5), (2, 4, 6), 2, False),
          s((32, 40), (3, 4, 5, 6), (3, 5), (2, 4, 6), 2, True),
          s((64, 72), (3, 4, 5, 6), (3, 5), (2, 4, 6), 2, False),
          s((112, 128), (3, 4, 5, 6, 7, 8), (3, 5), (2, 4, 6), 1, True),
          s((192, 216), (3, 4, 5, 6, 7, 8), (3, 5), (2, 4, 6), 2, True),
          s((216, 224), (1, 2), (3, 5), (2, 4, 6), 1, True),
      ),
      head_widths=(1792, 1984), head_act="swish", head="v3", head_expand=6.0,
      resolutions=(192, 224, 256, 288, 320), shortcut="attentive",
      mflops_window=(200.0, 2500.0),
  )


def _alphanet() -> SearchSpace:
  # AlphaNet appendix Table 7 (= AttentiveNAS search space), swish everywhere.
  s = lambda *a: _stage(*a, act="swish")  # noqa: E731
  return SearchSpace(
      name="alphanet",
      stem_widths=(16, 24), stem_act="swish",
      stages=(
          s((16, 24), (1, 2), (3, 5), (1,), 1, False),
          s((24, 32), (3, 4, 5), (3, 5), (4, 5, 6), 2, False),
          s((32, 40), (3, 4, 5, 6), (3, 5), (4, 5, 6), 2, True),
          s((64, 72), (3, 4, 5, 6), (3, 5), (4, 5, 6), 2, False),
          s((112, 128), (3, 4, 5, 6, 7, 8), (3, 5), (4, 5, 6), 1, True),
          s((192, 200, 208, 216), (3, 4, 5, 6, 7, 8), (3, 5), (6,), 2, True),
          s((216, 224), (1, 2), (3, 5), (6,), 1, True),
      ),
      head_widths=(1792, 1984), head_act="swish", head="v3", head_expand=6.0,
      resolutions=(192, 224, 256, 288), shortcut="attentive",
  )


def _ofa_mbv3() -> SearchSpace:
  # Once-for-All MobileNetV3 (width_mult 1.0): a fixed 16->16 first block, then
  # five elastic stages with per-layer kernel and expansion.
  return SearchSpace(
      name="ofa_mbv3",
      stem_widths=(16,), stem_act="hswish",
      stages=(
          _stage((16,), (1,), (3,), (1,), 1, False, "relu"),
          _stage((24,), (2, 3, 4), (3, 5, 7), (3, 4, 6), 2, False, "relu"),
          _stage((40,), (2, 3, 4), (3, 5, 7), (3, 4, 6), 2, True, "relu"),
          _stage((80,), (2, 3, 4), (3, 5, 7), (3, 4, 6), 2, False, "hswish"),
          _stage((112,), (2, 3, 4), (3, 5, 7), (3, 4, 6), 1, True, "hswish"),
          _stage((160,), (2, 3, 4), (3, 5, 7), (3, 4, 6), 2, True, "hswish"),
      ),
      head_widths=(1280,), head_act="hswish", head="v3", head_expand=6.0,
      resolutions=(128, 160, 192, 224), per_layer=True, shortcut="identity",
      kernel_transform=True,
  )


def _mbv3_large() -> SearchSpace:
  # Around torchvision's MobileNetV3-Large, which is one (per-layer) subnet of
  # it: kernels k = (3,3 | 5,5,5 | 3,3,3,3 | 3,3 | 5,5,5) and expansions
  # (1 | 4,3 | 3,3,3 | 6,2.5,2.3,2.3 | 6,6 | 6,6,6). Its max subnet widens every
  # layer to k=5 and the largest expansion.
  return SearchSpace(
      name="mbv3_large",
      stem_widths=(16,), stem_act="hswish",
      stages=(
          _stage((16,), (1,), (3,), (1,), 1, False, "relu"),
          _stage((24,), (1, 2), (3, 5), (3, 4), 2, False, "relu"),
          _stage((40,), (2, 3), (3, 5), (3, 4, 6), 2, True, "relu"),
          _stage((80,), (2, 3, 4), (3, 5), (2.3, 2.5, 3, 4, 6), 2, False, "hswish"),
          _stage((112,), (1, 2), (3, 5), (3, 4, 6), 1, True, "hswish"),
          _stage((160,), (2, 3), (3, 5), (3, 4, 6), 2, True, "hswish"),
      ),
      head_widths=(1280,), head_act="hswish", head="v3", head_expand=6.0,
      resolutions=(160, 192, 224), per_layer=True, shortcut="identity", bn_eps=1e-3,
      head_bias=True,
  )


def _lite(name: str, widths: tuple[tuple[int, ...], ...], depths: tuple[tuple[int, ...], ...],
          resolution: int) -> SearchSpace:
  """A space whose max subnet is EfficientNet-Lite-N: ReLU6, no SE, stem 32, head 1280.

  `widths`/`depths` are the choices of the seven stages, their maxima Lite-N's
  stage widths and repeats. Kernels: 3 besides Lite-N's 5; expansion {3, 4, 6};
  resolutions N's +- 32.
  """
  r = "relu6"
  kernels = (3, 3, 5, 3, 5, 5, 3)
  stages = [_stage(widths[0], depths[0], (3,), (1,), 1, False, r)]
  for i in range(1, 7):
    stages.append(_stage(widths[i], depths[i], (3,) if kernels[i] == 3 else (3, 5), (3, 4, 6),
                         (1, 2, 2, 2, 1, 2, 1)[i], False, r))
  return SearchSpace(
      name=name, stem_widths=(32,), stem_act=r, stages=tuple(stages),
      head_widths=(1280,), head_act=r, head="conv",
      resolutions=(resolution - 32, resolution, resolution + 32), shortcut="identity",
      padding="same", bn_eps=1e-3,
  )


_LITE0_WIDTHS = ((16,), (16, 24), (32, 40), (64, 80), (88, 112), (144, 192), (320,))


def _lite0() -> SearchSpace:
  # EfficientNet-Lite0 stages (e, k, s, c, n): (1,3,1,16,1) (6,3,2,24,2) (6,5,2,40,2)
  # (6,3,2,80,3) (6,5,1,112,3) (6,5,2,192,4) (6,3,1,320,1), 224 px.
  return _lite("lite0", _LITE0_WIDTHS,
               ((1,), (1, 2), (1, 2), (2, 3), (2, 3), (2, 3, 4), (1,)), 224)


def _lite1() -> SearchSpace:
  # Lite1: repeats x1.1 rounded up (first and last stage fixed), 240 px.
  return _lite("lite1", _LITE0_WIDTHS,
               ((1,), (2, 3), (2, 3), (3, 4), (3, 4), (3, 4, 5), (1,)), 240)


def _lite2() -> SearchSpace:
  # Lite2: widths x1.1 (stem and head fixed), repeats x1.2, 260 px.
  return _lite("lite2", ((16,), (16, 24), (32, 48), (64, 88), (88, 120), (144, 208), (352,)),
               ((1,), (2, 3), (2, 3), (3, 4), (3, 4), (3, 4, 5), (1,)), 260)


def _tiny() -> SearchSpace:
  # For tests: every elastic dimension and both shortcut styles, very cheap.
  s = lambda *a: _stage(*a, act="swish")  # noqa: E731
  return SearchSpace(
      name="tiny",
      stem_widths=(8, 16), stem_act="swish",
      stages=(
          s((8, 16), (1, 2), (3, 5), (1,), 1, False),
          s((16, 24), (1, 2, 3), (3, 5), (2, 4), 2, True),
          s((24, 32), (1, 2), (3, 5), (2, 3), 2, False),
      ),
      head_widths=(48, 64), head_act="swish", head="v3", head_expand=4.0,
      resolutions=(32, 40), shortcut="attentive",
  )


def _tiny_ofa() -> SearchSpace:
  return SearchSpace(
      name="tiny_ofa",
      stem_widths=(8,), stem_act="hswish",
      stages=(
          _stage((8,), (1,), (3,), (1,), 1, False, "relu"),
          _stage((16,), (1, 2, 3), (3, 5, 7), (3, 4, 6), 2, True, "relu"),
          _stage((24,), (2, 3), (3, 5, 7), (3, 6), 2, False, "hswish"),
      ),
      head_widths=(64,), head_act="hswish", head="v3", head_expand=6.0,
      resolutions=(32, 40), per_layer=True, shortcut="identity", kernel_transform=True,
      head_bias=True,
  )


def _tiny_lite() -> SearchSpace:
  r = "relu6"
  return SearchSpace(
      name="tiny_lite",
      stem_widths=(16,), stem_act=r,
      stages=(
          _stage((8,), (1,), (3,), (1,), 1, False, r),
          _stage((8, 16), (1, 2), (3, 5), (3, 6), 2, False, r),
          _stage((24,), (1, 2), (3, 5), (3, 6), 2, False, r),
      ),
      head_widths=(64,), head_act=r, head="conv",
      resolutions=(32, 35), shortcut="identity", padding="same", bn_eps=1e-3,
  )


_REGISTRY = {
    "tofa": _tofa, "alphanet": _alphanet, "ofa_mbv3": _ofa_mbv3, "mbv3_large": _mbv3_large,
    "lite0": _lite0, "lite1": _lite1, "lite2": _lite2,
    "tiny": _tiny, "tiny_ofa": _tiny_ofa, "tiny_lite": _tiny_lite,
}
SPACE_NAMES = tuple(_REGISTRY)


def get_space(name: str) -> SearchSpace:
  """Returns a built-in search space by name."""
  if name not in _REGISTRY:
    raise ValueError(f"model.space={name!r} is unknown; choose one of {list(SPACE_NAMES)} "
                     "or define model.custom_space")
  return _REGISTRY[name]()


def space_from_config(cfg: Mapping[str, Any]) -> SearchSpace:
  """Builds a user-defined space from a (ConfigDict-like) mapping.

  `cfg` holds the SearchSpace fields; `stages` is a list of mappings with the
  StageSpec fields. Lists become tuples.
  """
  cfg = dict(cfg)
  try:
    stages = tuple(_stage(st["widths"], st["depths"], st["kernels"], st["expansions"],
                          int(st["stride"]), bool(st["se"]), st["act"])
                   for st in cfg.pop("stages"))
  except KeyError as e:
    raise ValueError(f"model.custom_space.stages entry lacks key {e}; each stage needs "
                     "widths, depths, kernels, expansions, stride, se, act") from None
  fields = {f.name for f in dataclasses.fields(SearchSpace)}
  unknown = set(cfg) - fields
  if unknown:
    raise ValueError(f"model.custom_space has unknown keys {sorted(unknown)}; "
                     f"allowed: {sorted(fields)}")
  for key in ("stem_widths", "head_widths", "resolutions", "mflops_window"):
    if cfg.get(key) is not None:
      cfg[key] = tuple(cfg[key])
  return SearchSpace(stages=stages, **cfg)


def resolve(model_cfg: Mapping[str, Any]) -> SearchSpace:
  """The space a `config.model` names: `model.space`, or `model.custom_space` when
  `model.space == 'custom'`. `model.resolutions` and `model.mflops_window`, if set,
  override the space's (e.g. a small training resolution on CPU)."""
  name = model_cfg["space"]
  if name == "custom":
    if not model_cfg.get("custom_space"):
      raise ValueError("model.space='custom' needs model.custom_space (see "
                       "configs/custom_space.py)")
    space = space_from_config(model_cfg["custom_space"])
  else:
    space = get_space(name)
  resolutions = model_cfg.get("resolutions")
  if resolutions:
    space = dataclasses.replace(space, resolutions=tuple(int(r) for r in resolutions))
  window = model_cfg.get("mflops_window")
  if window:
    if len(window) != 2:
      raise ValueError(f"model.mflops_window={window!r} must be () or (low, high)")
    space = dataclasses.replace(space, mflops_window=(float(window[0]), float(window[1])))
  return space

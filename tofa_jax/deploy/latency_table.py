"""Latency lookup tables: every layer configuration of a space timed once, on this machine.

OFA's LatencyEstimator idea for a user's own hardware and runtime. `enumerate_layers`
lists every distinct timed unit a space can produce at its resolutions: the stem per
(resolution, stem width), each MBConv block per its concrete dimensions (input size,
c_in, mid, c_out, kernel, stride, expand, SE width, activation, shortcut) and the head
per (input size, last width, head widths, classes). `build` converts each one alone
for a runtime (`runtimes.session`, batch 1, random weights: values do not change the
time) and times it with `cost.latency.median_ms`. `load(path).predict(arch)` adds up
a subnet's layers.

Keys come from one function, `layers(space, arch, num_classes)`, which both the
enumeration (on synthetic subnets) and the prediction walk, so they cannot drift
apart. Each isolated layer pays one call into the runtime; a whole subnet pays one
for all its layers, so the table also records `overhead_ms` (a trivial graph's time)
and predicts `overhead_ms + sum(max(entry - overhead_ms, 0))`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.metadata
import itertools
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from tofa_jax.cost import latency
from tofa_jax.deploy import runtimes
from tofa_jax.runtime import progress
from tofa_jax.space import arch as arch_lib
from tofa_jax.space import plan as plan_lib
from tofa_jax.space import sampling, search_space
from tofa_jax.space.search_space import SearchSpace
from tofa_jax.weights import folded_net

FORMAT, VERSION = "tofa_jax.latency_table", 1
PREDICTION = "overhead_ms + sum(max(entry_ms - overhead_ms, 0))"
# Fields that change no layer's graph: resolutions are in the keys, the window bounds
# sampling only. The name is checked on its own, for a clearer message.
_UNFINGERPRINTED = ("name", "resolutions", "mflops_window")
_PACKAGES = {"jax": ("jax", "jaxlib"), "onnxruntime": ("jax", "jax2onnx", "onnxruntime"),
             "tflite": ("jax", "tensorflow", "ai-edge-litert")}


@dataclasses.dataclass(frozen=True)
class Layer:
  """One timed unit: the stem, an MBConv block or the head, at its input size.

  Attributes:
    kind: 'stem', 'block' or 'head'.
    size: input height (= width).
    c_in: input channels.
    c_out: stem width, block output width, or the classifier's classes.
    block: the block's plan, renamed 'layer' and stage 0 (neither changes its graph).
    head: head widths: (final expand, feature mix) for 'v3', (conv,) for 'conv'.
  """

  kind: str
  size: int
  c_in: int
  c_out: int
  block: plan_lib.LayerPlan | None = None
  head: tuple[int, ...] = ()

  @property
  def key(self) -> str:
    if self.kind == "stem":
      return f"stem r{self.size} 3>{self.c_out}"
    if self.kind == "head":
      return f"head r{self.size} {'>'.join(map(str, (self.c_in, *self.head, self.c_out)))}"
    b = self.block
    return (f"block r{self.size} {b.c_in}>{b.mid}>{b.c_out} k{b.kernel} s{b.stride} "
            f"e{int(b.expand)} se{b.se_mid} {b.act} {b.residual}")


def layers(space: SearchSpace, arch: arch_lib.Arch, num_classes: int) -> list[Layer]:
  """The timed units of `arch` in order: stem, every active block, head."""
  size = arch.resolution
  out = [Layer("stem", size, 3, arch.width[0])]
  size = plan_lib.conv_out_size(size, 3, 2, space.padding)
  for lp in plan_lib.plan(space, arch):
    out.append(Layer("block", size, lp.c_in, lp.c_out,
                     dataclasses.replace(lp, name="layer", stage=0)))
    size = plan_lib.conv_out_size(size, lp.kernel, lp.stride, space.padding)
  widths = ((plan_lib.head_expand_width(space, arch), arch.width[-1]) if space.head == "v3"
            else (arch.width[-1],))
  out.append(Layer("head", size, arch.width[-2], num_classes, head=widths))
  return out


def enumerate_layers(space: SearchSpace, num_classes: int,
                     resolutions: Sequence[int] | None = None) -> dict[str, Layer]:
  """Every distinct layer configuration of `space` at `resolutions` (default: its own).

  A stage's layers depend only on the widths either side of it, its kernel and
  expansion, and the input size (set by the resolution and earlier strides alone), so
  one synthetic subnet per (resolution, stage, c_in, c_out, kernel, expansion) yields
  its first layer and, at depth 2, every later layer.
  """
  out: dict[str, Layer] = {}
  for r in resolutions or space.resolutions:
    base = dataclasses.replace(sampling.max_arch(space), resolution=int(r))
    for s, st in enumerate(space.stages):
      ins = space.width_choices[s]  # the stem's or the previous stage's widths
      d = min(st.max_depth, 2)
      offset = 1 + sum(base.depth[:s])
      for c_in, c_out, k, e in itertools.product(ins, st.widths, st.kernels, st.expansions):
        arch = _with(base, s, d, k, e, {s: c_in, s + 1: c_out})
        for layer in layers(space, arch, num_classes)[offset:offset + d]:
          out.setdefault(layer.key, layer)
    for w in space.stem_widths:
      layer = layers(space, _with(base, 0, base.depth[0], None, None, {0: w}), num_classes)[0]
      out.setdefault(layer.key, layer)
    for c_last, h in itertools.product(space.stages[-1].widths, space.head_widths):
      arch = _with(base, 0, base.depth[0], None, None, {-2: c_last, -1: h})
      layer = layers(space, arch, num_classes)[-1]
      out.setdefault(layer.key, layer)
  return out


def _with(arch: arch_lib.Arch, s: int, depth: int, kernel: int | None, expand: float | None,
          widths: dict[int, int]) -> arch_lib.Arch:
  """`arch` with some widths replaced and stage `s` at `depth` (kernel, expand if given)."""
  width = list(arch.width)
  for i, w in widths.items():
    width[i] = w
  ds, ks, es = list(arch.depth), list(arch.kernel), list(arch.expand)
  ds[s] = depth
  ks[s] = (kernel if kernel is not None else ks[s][0],) * depth
  es[s] = (expand if expand is not None else es[s][0],) * depth
  return arch_lib.Arch(arch.resolution, tuple(width), tuple(ds), tuple(ks), tuple(es))


def fingerprint(space: SearchSpace) -> str:
  """A short hash of the space definition, less the fields no layer's graph depends on."""
  d = {k: v for k, v in dataclasses.asdict(space).items() if k not in _UNFINGERPRINTED}
  return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# -- timing ----------------------------------------------------------------------------


def _weights(shapes: dict[str, tuple[int, ...]], rng: np.random.Generator) -> dict:
  # Fan-in scaled kernels keep activations O(1): no overflow, no denormals, which are
  # the only ways values could change a CPU's time.
  return {k: jnp.asarray(rng.normal(0.0, 1.0 / math.sqrt(max(math.prod(s[:-1]), 1)), s)
                         .astype(np.float32) if k.endswith("kernel") else np.zeros(s, np.float32))
          for k, s in shapes.items()}


def layer_fn(space: SearchSpace, layer: Layer, rng: np.random.Generator
             ) -> tuple[Callable, tuple[int, int, int]]:
  """`layer` as a function of its NHWC input, random weights, and its input (H, W, C)."""
  hwc = (layer.size, layer.size, layer.c_in)
  if layer.kind == "stem":
    w = _weights({"stem/kernel": (3, 3, 3, layer.c_out), "stem/bias": (layer.c_out,)}, rng)
    return (lambda x: folded_net.stem(space, w, x)), hwc
  if layer.kind == "block":
    w = _weights(folded_net.block_shapes(space, layer.block), rng)
    return (lambda x: folded_net.block(space, layer.block, w, x)), hwc
  c, hw = layer.c_in, layer.head[-1]
  if space.head == "conv":
    shapes = {"head/conv/kernel": (1, 1, c, hw), "head/conv/bias": (hw,)}
  else:
    fe = layer.head[0]
    shapes = {"head/final_expand/kernel": (1, 1, c, fe), "head/final_expand/bias": (fe,),
              "head/feature_mix/kernel": (1, 1, fe, hw)}
    if space.head_bias:
      shapes["head/feature_mix/bias"] = (hw,)
  shapes |= {"classifier/kernel": (hw, layer.c_out), "classifier/bias": (layer.c_out,)}
  w = _weights(shapes, rng)
  return (lambda x: folded_net.head(space, w, x)), hwc


def time_fn(runtime: str, fn: Callable, hwc: tuple[int, int, int], threads: int, warmup: int,
            repeats: int, rng: np.random.Generator) -> float:
  """Median ms of one batch-1 call of `fn` converted for `runtime` (conversion untimed)."""
  sess = runtimes.session(runtime, fn, hwc, threads)
  x = rng.normal(size=(1, *hwc)).astype(np.float32)
  return latency.median_ms(lambda: sess(x), warmup, repeats)


def _versions(runtime: str) -> dict[str, str]:
  out = {}
  for p in _PACKAGES[runtime]:
    try:
      out[p] = importlib.metadata.version(p)
    except importlib.metadata.PackageNotFoundError:
      out[p] = "not installed"
  return out


def build(space: SearchSpace, runtime: str, threads: int, num_classes: int, warmup: int,
          repeats: int, resolutions: Sequence[int] | None = None,
          log: Callable[[str], None] = print, progress_every_s: float = 30.0) -> dict:
  """Times every layer configuration of `space` at `resolutions`; returns the table.

  Batch 1, `threads` runtime threads, `warmup` untimed calls then the median of
  `repeats`. A progress line (done / total, ETA) every `progress_every_s` seconds.
  """
  runtimes.check(runtime, "--runtime")
  latency.check(warmup, repeats, "--repeats")
  if threads < 1:
    raise ValueError(f"--threads={threads}; use at least 1")
  resolutions = tuple(int(r) for r in (resolutions or space.resolutions))
  todo = enumerate_layers(space, num_classes, resolutions)
  rng = np.random.default_rng(0)
  t0 = time.monotonic()
  prog = progress.Progress(len(todo), every_s=progress_every_s)
  # A trivial graph's time: what every isolated layer pays once for the call itself. More
  # repeats than the layers, since it is subtracted from every one of them.
  overhead = time_fn(runtime, lambda x: x + 1.0, (1, 1, 8), threads, warmup,
                     max(repeats, 100), rng)
  log(f"latency table: {len(todo)} layer configurations of space {space.name} at "
      f"{list(resolutions)} px, {runtime}, {threads} thread(s); call overhead {overhead:.4f} ms")
  entries = {}
  for i, (key, layer) in enumerate(todo.items(), 1):
    fn, hwc = layer_fn(space, layer, rng)
    entries[key] = time_fn(runtime, fn, hwc, threads, warmup, repeats, rng)
    if prog.due(i):
      rate = prog.since_start(i)
      log(f"latency table: {i}/{len(todo)} timed, {rate.seconds:.0f} s, "
          f"ETA {rate.left_s:.0f} s")
  return {
      "format": FORMAT, "version": VERSION,
      "space": space.name, "space_fingerprint": fingerprint(space),
      # As JSON holds it (lists, not tuples), so a built table equals its saved file.
      "space_definition": json.loads(json.dumps(dataclasses.asdict(space))),
      "num_classes": num_classes, "resolutions": list(resolutions),
      "runtime": runtime, "threads": None if runtime == "jax" else threads,
      "batch": 1, "warmup": warmup, "repeats": repeats, "statistic": "median",
      "host": {"node": platform.node(), "machine": platform.machine(),
               "processor": platform.processor(), "system": platform.platform(),
               "cpus": os.cpu_count()},
      "versions": _versions(runtime),
      "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
      "build_s": round(time.monotonic() - t0, 1),
      "overhead_ms": overhead, "prediction": PREDICTION, "entries": entries,
  }


# -- files and prediction --------------------------------------------------------------


def save(table: dict, path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(table, f, indent=1)
  return path


class LatencyTable:
  """A loaded table for one space and class count; `predict(arch)` in milliseconds."""

  def __init__(self, table: dict, space: SearchSpace, path: str = "<table>"):
    self.table, self.space, self.path = table, space, path
    self.entries: dict[str, float] = table["entries"]
    self.overhead_ms = float(table["overhead_ms"])
    self.num_classes = int(table["num_classes"])

  def breakdown(self, arch: arch_lib.Arch) -> list[tuple[str, float]]:
    """(key, table ms) of each layer of `arch`, in order."""
    out = []
    for layer in layers(self.space, arch, self.num_classes):
      if layer.key not in self.entries:
        r = arch.resolution
        raise ValueError(
            f"latency table {self.path} has no entry {layer.key!r} for this {r} px subnet "
            f"(it covers {self.table['resolutions']} px); rebuild it with "
            f"python -m tofa_jax.latency_table --resolutions={r} (plus the others you need)")
      out.append((layer.key, self.entries[layer.key]))
    return out

  def predict(self, arch: arch_lib.Arch) -> float:
    """Predicted batch-1 milliseconds of the whole subnet: one call overhead, once."""
    o = self.overhead_ms
    return o + sum(max(ms - o, 0.0) for _, ms in self.breakdown(arch))

  def describe(self) -> dict:
    """Where the figures come from, for reports (palette.json)."""
    keys = ("space", "num_classes", "resolutions", "runtime", "threads", "batch", "warmup",
            "repeats", "statistic", "host", "versions", "date", "build_s", "overhead_ms",
            "prediction")
    return {"path": self.path, **{k: self.table.get(k) for k in keys},
            "entries": len(self.entries)}


def load(path: str, space: SearchSpace | None = None,
         num_classes: int | None = None) -> LatencyTable:
  """Reads a table; checks it against the run's `space` and `num_classes` when given.

  Without `space`, the table's own stored space definition is used.
  """
  if not os.path.exists(path):
    raise ValueError(f"latency table {path}: no such file; build it with "
                     f"python -m tofa_jax.latency_table --out={path}")
  try:
    with open(path) as f:
      table = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"latency table {path}: not JSON ({e})") from None
  if not isinstance(table, dict) or table.get("format") != FORMAT:
    raise ValueError(f"latency table {path}: not a latency table (written by "
                     "python -m tofa_jax.latency_table)")
  if table.get("version") != VERSION:
    raise ValueError(f"latency table {path}: format version {table.get('version')}, this "
                     f"code reads version {VERSION}; rebuild it")
  if space is None:
    space = search_space.space_from_config(table["space_definition"])
  elif table["space"] != space.name:
    raise ValueError(f"latency table {path} was built for space {table['space']!r}, not "
                     f"this run's space {space.name!r}; build one for {space.name!r}")
  elif table["space_fingerprint"] != fingerprint(space):
    raise ValueError(f"latency table {path} was built for another definition of space "
                     f"{space.name!r} (fingerprint {table['space_fingerprint']}, this run's "
                     f"{fingerprint(space)}); rebuild it")
  if num_classes is not None and table["num_classes"] != num_classes:
    raise ValueError(f"latency table {path} was built for {table['num_classes']} classes, "
                     f"this run has {num_classes}; rebuild it with --num_classes={num_classes}")
  return LatencyTable(table, space, path)

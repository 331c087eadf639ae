"""One data-parallel TOFA training step (Algorithm 1, lines 5-17) and its programs.

`make_train_step` returns a `TrainStep`: `step(state, batch, subnets, resolution) ->
(state, metrics)` over a device mesh, the batch sharded on its `data` axis and the
state replicated, so the same code runs on 1 or N devices. The forward and backward
passes run per device under `shard_map`: dropout masks, and BatchNorm moments with
`model.bn_sync='global'`, span the global batch ('device': each device's own, their
running statistics averaged at the end), and each device's gradient stays local until
one all-reduce per step (one flat vector per dtype); the optimiser update then runs
replicated.

Elastic resolution: batches arrive at one size (`StepConfig.image_size`, the largest
training resolution by default) and each subnet's input is rescaled on device
(bicubic, as AlphaNet's appendix does) to its own resolution. The max subnet trains at
the largest resolution, the min subnet at the smallest, and the random subnets of a
step share one sampled resolution, the step's `resolution`.

The sandwich (default) runs as separately compiled parts, `sandwich.py`: the max
subnet (the teacher; L^lab and L^FM), then one program per distilled subnet (the min
and K random subnets; one program per resolution, shared by every subnet at it), then
the update. The backward runs subnet by subnet, as OFA and AttentiveNAS do, and the
sum is the gradient of the whole sandwich's loss.
Teacher-less schemes (every `train.sampling` but sandwich, and `train.mode='single'`;
`schemes.py` says which subnets) train the step's N subnets, which share the step's
`resolution`, with L^lab (+ L^FM on each subnet's own pseudo-labels), in one program per
(resolution, N): one backward per subnet, accumulated in a `lax.scan` over them, their
terms summed (mask_rate averaged). Each pass updates the running BatchNorm statistics
in turn, as OFA's successive PyTorch passes do; every evaluated subnet is recalibrated
anyway.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from tofa_jax.space import arch as arch_lib
from tofa_jax.space.search_space import SearchSpace
from tofa_jax.train import collectives, forward, losses, sandwich, schemes
from tofa_jax.train.schemes import MODES

step_resolution = schemes.step_resolution


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # completed optimiser steps
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array  # raw uint32 PRNG key (checkpointable)


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """What one step computes (from `config.loss` and `config.train`)."""

  variant: str = "tofa"
  scheme: str = "sandwich"
  num_random: int = 2
  threshold: float = 0.95
  label_smoothing: float = 0.1
  beta: float = 1.0
  temperature: float = 1.0
  image_size: int | None = None  # batches' size; None: the space's largest resolution
  mode: str = "supernet"  # 'single': one fixed arch, no teacher (train.mode)

  def __post_init__(self):
    _, dist = losses.terms(self.variant)
    if self.mode not in MODES:
      raise ValueError(f"train.mode={self.mode!r} is unknown; choose one of {list(MODES)}")
    schemes.Schedule(self.scheme, self.num_random)  # checks the scheme and num_random
    if self.mode == "single" and dist:
      raise ValueError(f"train.mode='single' trains one network with no teacher, but "
                       f"loss.variant={self.variant!r} distils; use loss.variant 'lab' (the "
                       "Baseline) or 'fm' (FixMatch)")
    if self.mode == "supernet" and self.scheme != "sandwich" and dist:
      raise ValueError(f"train.sampling={self.scheme!r} trains with no teacher; loss.variant "
                       "must be 'lab' or 'fm'")

  @property
  def teacher(self) -> bool:
    """The sandwich distils from the max subnet; every other way of training has none."""
    return self.mode == "supernet" and self.scheme == "sandwich"

  @property
  def uses_unlabelled(self) -> bool:
    fm, dist = losses.terms(self.variant)
    return fm or dist


def image_size(config, space: SearchSpace) -> int:
  """The size training batches are loaded at: `data.image_size`, or by default the
  largest of the space's (that is, the run's) resolutions."""
  size = config.data.get("image_size")
  largest = max(space.resolutions)
  if size is None:
    return largest
  if int(size) < largest:
    raise ValueError(f"data.image_size={size} is below the largest training resolution "
                     f"{largest} of space {space.name!r} {list(space.resolutions)}; leave it "
                     "unset (None) to load at the largest, or set model.resolutions")
  return int(size)


def step_config(config, space: SearchSpace) -> StepConfig:
  """The StepConfig of a run's config (`loss`, `train`, `data.image_size`)."""
  return StepConfig(
      variant=config.loss.variant, scheme=config.train.sampling,
      num_random=config.train.num_random, threshold=config.loss.threshold,
      label_smoothing=config.loss.label_smoothing, beta=config.loss.beta,
      temperature=config.loss.temperature, image_size=image_size(config, space),
      mode=config.train.get("mode", "supernet"))


def init_state(variables: dict, tx: optax.GradientTransformation, seed: int) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                    batch_stats=variables["batch_stats"], opt_state=tx.init(variables["params"]),
                    rng=jax.random.PRNGKey(seed))


def step_archs(space: SearchSpace, cfg: StepConfig, seed: int, step: int, epoch: int
               ) -> list[arch_lib.Arch]:
  """The subnets of `cfg.scheme` at `step` in epoch `epoch`, for a run of one-step epochs
  of unknown length (benchmarks, tests). The trainer uses `schemes.Schedule`, which
  knows the run's length and epoch."""
  sched = schemes.Schedule(cfg.scheme, cfg.num_random)
  if cfg.scheme == "rss_epoch":  # the only scheme here that reads the epoch, not the step
    return sched.archs(space, seed, epoch)
  return sched.archs(space, seed, step)


def stacked(space: SearchSpace, archs: list[arch_lib.Arch]) -> dict[str, np.ndarray]:
  return arch_lib.stack_arrays([arch_lib.to_arrays(space, a) for a in archs])


def abstract_batch(cfg: StepConfig, batch_size: int, unlabelled_batch_size: int,
                   mesh: Mesh) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes, dtypes and shardings of a step's `batch`, to compile it without data."""
  sharded = NamedSharding(mesh, PartitionSpec("data"))
  size = cfg.image_size
  image = lambda n: jax.ShapeDtypeStruct((n, size, size, 3),  # noqa: E731
                                         jnp.float32, sharding=sharded)
  batch = {"images": image(batch_size),
           "labels": jax.ShapeDtypeStruct((batch_size,), jnp.int32, sharding=sharded)}
  if cfg.uses_unlabelled:
    batch["unlabelled_weak"] = image(unlabelled_batch_size)
    batch["unlabelled_strong"] = image(unlabelled_batch_size)
  return batch


def loss_and_grads(model, cfg: StepConfig, resolution: int) -> Callable:
  """`f(params, batch_stats, batch, subnets, key) -> ((loss, (batch_stats, metrics)),
  grads)`: the teacher-less subnets' loss and gradient, all at `resolution` (the
  sandwich's parts are `sandwich.py`'s)."""
  if cfg.teacher:
    raise ValueError("the sandwich step runs as separate programs (sandwich.py); "
                     "loss_and_grads is the teacher-less schemes'")
  use_fm, _ = losses.terms(cfg.variant)

  def teacherless_grads(params, batch_stats, batch, subnets, key):
    """Each subnet's L^lab (+ L^FM on its own pseudo-labels) at `resolution`, one
    backward per subnet accumulated in a scan; each pass updates the running BN
    statistics in turn."""
    n_l = batch["labels"].shape[0]
    views = [batch["images"]] + ([batch["unlabelled_weak"], batch["unlabelled_strong"]]
                                 if use_fm else [])
    n_u = batch["unlabelled_weak"].shape[0] if use_fm else 0

    def one_subnet(carry, xs):
      grads, stats = carry
      arrays, k = xs

      def sub_loss(p):
        logits, new_vars = forward.train_apply(model, {"params": p, "batch_stats": stats},
                                               views, arrays, k, resolution)
        lab = losses.labelled(logits[:n_l], batch["labels"], cfg.label_smoothing)
        fm = rate = jnp.zeros(())
        if use_fm:
          fm, mask, _ = losses.fixmatch(jax.lax.stop_gradient(logits[n_l:n_l + n_u]),
                                        logits[n_l + n_u:], cfg.threshold, cfg.label_smoothing)
          rate = jnp.mean(mask)
        return lab + fm, (new_vars["batch_stats"], lab, fm, rate)

      (_, (stats, *terms)), g = jax.value_and_grad(sub_loss, has_aux=True)(params)
      return (jax.tree.map(jnp.add, grads, g), stats), tuple(terms)

    keys = jax.random.split(key, jax.tree.leaves(subnets)[0].shape[0])
    zeros = jax.tree.map(jnp.zeros_like, params)
    (grads, new_stats), (lab, fm, rate) = jax.lax.scan(one_subnet, (zeros, batch_stats),
                                                       (subnets, keys))
    metrics = {"loss_lab": jnp.sum(lab)}
    if use_fm:
      metrics.update(loss_fm=jnp.sum(fm), mask_rate=jnp.mean(rate))
    return (jnp.sum(lab) + jnp.sum(fm), (new_stats, metrics)), grads

  return teacherless_grads


@dataclasses.dataclass(frozen=True)
class Program:
  """One compiled XLA program of the step: `kind` 'step' (a teacher-less step whole,
  its subnets at `resolution`), or a sandwich step's part (`sandwich.py`): 'teacher'
  (the max subnet, at the largest `resolution`), 'subnet' (one distilled subnet at
  `resolution`, of a step's `subnets`) or 'update'."""

  resolution: int
  subnets: int
  kind: str = "step"

  def sort_key(self) -> tuple:
    return (KINDS.index(self.kind), self.resolution, self.subnets)

  def label(self) -> str:
    """How the trainer names it: '224 px', 'teacher, 320 px', 'update'."""
    if self.kind == "update":
      return "update"
    px = f"{self.resolution} px"
    return px if self.kind == "step" else f"{self.kind}, {px}"


KINDS = ("teacher", "step", "subnet", "update")  # the order programs compile in


def programs_of(cfg: StepConfig, space: SearchSpace, resolution: int, n: int
                ) -> list[Program]:
  """The programs a step of `n` subnets at `resolution` runs, in order (a subnet
  program once per subnet)."""
  if not cfg.teacher:
    return [Program(resolution, n)]
  smallest = min(space.resolutions)
  subnets = [Program(smallest if i == 0 else resolution, n, "subnet") for i in range(n)]
  return [Program(max(space.resolutions), 0, "teacher"), *subnets, Program(0, 0, "update")]


def run(fns: Callable[[Program], Callable], cfg: StepConfig, space: SearchSpace,
        mesh: Mesh, state: TrainState, batch: dict, subnets: dict, resolution: int
        ) -> tuple[TrainState, dict]:
  """One step with the programs `fns(program)` (jitted, or compiled before step 1) over
  `mesh`; also runs under a trace (`jax.eval_shape`)."""
  n = jax.tree.leaves(subnets)[0].shape[0]
  programs = programs_of(cfg, space, resolution, n)
  if not cfg.teacher:
    return fns(programs[0])(state, batch, subnets)
  acc, logits, key, stats = fns(programs[0])(state, batch)
  # The subnets and their indices on the devices once per step, not once per call.
  subnets, indices = jax.device_put(
      (subnets, [np.int32(i) for i in range(n)]),
      NamedSharding(mesh, PartitionSpec()))
  for i, p in enumerate(programs[1:-1]):
    acc = fns(p)(state, batch, logits, subnets, key, indices[i], acc)
  return fns(programs[-1])(state, acc, stats)


class TrainStep:
  """`step(state, batch, subnets, resolution) -> (state, metrics)`, data parallel over
  `mesh` (batch sharded on its `data` axis, state replicated), and its programs.

  `batch` holds `images` (B_l, H, W, 3), `labels` (B_l,) and, when the variant uses
  unlabelled data, `unlabelled_weak`/`unlabelled_strong` (B_u, H, W, 3), at
  `cfg.image_size`; `subnets` are `stacked` arrays of `step_archs` and `resolution` is
  their `step_resolution`. `programs(resolution, n)` names the XLA programs such a step
  runs, `jitted(program)` each one's jitted function and `lower(program, ...)` lowers
  it on abstract arguments (the trainer compiles them all before step 1 and runs
  steps with `run`)."""

  def __init__(self, model, tx: optax.GradientTransformation, cfg: StepConfig, mesh: Mesh,
               schedule: optax.Schedule | None = None):
    axis = mesh.axis_names[0]
    self.cfg, self.mesh, self.space = cfg, mesh, model.space
    self._model = model.clone(axis_name=axis)
    self._tx, self._schedule = tx, schedule
    self._replicated = NamedSharding(mesh, PartitionSpec())
    self._sharded = NamedSharding(mesh, PartitionSpec(axis))
    self._stats = (self._sharded if sandwich.per_device_stats(self._model)
                   else self._replicated)
    self._jitted: dict[Program, Callable] = {}

  def programs(self, resolution: int, n: int) -> list[Program]:
    return programs_of(self.cfg, self.space, resolution, n)

  def jitted(self, program: Program) -> Callable:
    if program not in self._jitted:
      self._jitted[program] = self._jit(program)
    return self._jitted[program]

  def _jit(self, p: Program) -> Callable:
    rep, shard, model = self._replicated, self._sharded, self._model
    if p.kind == "teacher":
      return jax.jit(sandwich.teacher(model, self.cfg, self.mesh), in_shardings=(rep, shard),
                     out_shardings=(shard, shard, rep, self._stats))
    if p.kind == "subnet":
      return jax.jit(sandwich.subnet(model, self.cfg, self.mesh, p.resolution),
                     in_shardings=(rep, shard, shard, rep, rep, rep, shard),
                     out_shardings=shard, donate_argnums=(6,))
    if p.kind == "update":
      return jax.jit(sandwich.update(model, self._tx, self.mesh, self._schedule),
                     in_shardings=(rep, shard, self._stats), out_shardings=(rep, rep),
                     donate_argnums=(0,))
    return jax.jit(self._whole(p.resolution), in_shardings=(rep, shard, rep),
                   out_shardings=(rep, rep), donate_argnums=(0,))

  def _whole(self, resolution: int) -> Callable:
    """A teacher-less step in one program: each device's gradient, one all-reduce, the
    optimiser's update."""
    axis, model, tx = self.mesh.axis_names[0], self._model, self._tx
    grads_fn = loss_and_grads(model, self.cfg, resolution)

    def on_device(params, batch_stats, batch, subnets, key):
      (loss, (batch_stats, metrics)), grads = grads_fn(params, batch_stats, batch, subnets,
                                                       key)
      if model.bn_sync == "global":
        loss, metrics, grads = collectives.pmean_together((loss, metrics, grads), axis)
      else:  # each device's statistics are its own: keep their mean
        loss, metrics, grads, batch_stats = collectives.pmean_together(
            (loss, metrics, grads, batch_stats), axis)
      return (loss, (batch_stats, metrics)), grads

    # check_vma=False: the parameters enter replicated and each device differentiates
    # its own copy, so gradients stay per device through the subnet scan (no reduction
    # per subnet) until the one pmean above.
    grads_of = jax.shard_map(
        on_device, mesh=self.mesh, in_specs=(PartitionSpec(), PartitionSpec(),
                                             PartitionSpec(axis), PartitionSpec(),
                                             PartitionSpec()),
        out_specs=PartitionSpec(), check_vma=False)

    def step(state: TrainState, batch: dict, subnets: dict) -> tuple[TrainState, dict]:
      key = jax.random.fold_in(state.rng, state.step)
      (loss, (batch_stats, metrics)), grads = grads_of(state.params, state.batch_stats,
                                                       batch, subnets, key)
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      metrics["loss"] = loss
      if self._schedule is not None:
        metrics["lr"] = self._schedule(state.step)
      return state.replace(step=state.step + 1, params=optax.apply_updates(state.params,
                                                                           updates),
                           batch_stats=batch_stats, opt_state=opt_state), metrics

    return step

  def abstract_args(self, program: Program, state, batch: dict, subnets: dict) -> tuple:
    """The arguments `program` is called with, as abstract values (shapes, dtypes,
    shardings) from the abstract `state`, `batch` and `subnets` of its step."""
    if program.kind == "step":
      return state, batch, subnets
    if program.kind == "teacher":
      return state, batch
    out = jax.eval_shape(self.jitted(Program(max(self.space.resolutions), 0, "teacher")),
                         state, batch)
    acc, logits, key, stats = (
        jax.tree.map(lambda s, sh=sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), x)
        for x, sh in zip(out, (self._sharded, self._sharded, self._replicated, self._stats),
                         strict=True))
    if program.kind == "update":
      return state, acc, stats
    return state, batch, logits, subnets, key, jax.ShapeDtypeStruct((), jnp.int32), acc

  def lower(self, program: Program, state, batch: dict, subnets: dict,
            platform: str | None = None):
    """`program` lowered on abstract arguments; `platform` ('cuda', 'tpu', 'cpu') lowers
    for hardware this process lacks (None: its own backend)."""
    traced = self.jitted(program).trace(*self.abstract_args(program, state, batch, subnets))
    return traced.lower(lowering_platforms=(platform,) if platform else None)

  def gradients(self, state: TrainState, batch: dict, subnets: dict, resolution: int
                ) -> tuple[dict, Any, Any]:
    """A sandwich step's (loss terms, gradient, new batch_stats), averaged over the
    devices: what its `update` program applies."""
    captured = {}

    def averaged(state, acc, stats):  # in place of the update: the sums it would apply
      captured.update(acc=jax.tree.map(lambda a: jnp.mean(a, axis=0), acc), stats=stats)
      return state, {}

    run(lambda p: averaged if p.kind == "update" else self.jitted(p), self.cfg, self.space,
        self.mesh, state, batch, subnets, resolution)
    return captured["acc"]["terms"], captured["acc"]["grads"], captured["stats"]

  def __call__(self, state: TrainState, batch: dict, subnets: dict, resolution: int
               ) -> tuple[TrainState, dict]:
    return run(self.jitted, self.cfg, self.space, self.mesh, state, batch, subnets,
               resolution)


def make_train_step(model, tx: optax.GradientTransformation, cfg: StepConfig, mesh: Mesh,
                    schedule: optax.Schedule | None = None) -> TrainStep:
  """The step (`TrainStep`): `step(state, batch, subnets, resolution)`."""
  return TrainStep(model, tx, cfg, mesh, schedule)

"""One jitted, data-parallel TOFA training step (Algorithm 1, lines 5-17).

`make_train_step` returns `step(state, batch, subnets, resolution) -> (state,
metrics)`, jitted over a device mesh with the batch sharded on its `data` axis and
the state replicated, so the same code runs on 1 or N devices. The forward and
backward passes run per device under `shard_map`: dropout masks, and BatchNorm
moments with `model.bn_sync='global'`, span the global batch ('device': each
device's own, their running statistics averaged at the end), and each device's
gradient stays local until one all-reduce per step (a `pmean` after the last
subnet, one flat vector per dtype); the optimiser update then runs replicated.

Elastic resolution: batches arrive at one size (`StepConfig.image_size`, the
largest training resolution by default) and each subnet's input is rescaled on
device (bicubic, as AlphaNet's appendix does) to its own resolution. The max
subnet trains at the largest resolution, the min subnet at the smallest, and the
random subnets of a step share one sampled resolution, the step's static
`resolution` argument: a run compiles at most one program per resolution.

Sandwich scheme (default), per step:
  1. the max subnet runs once, in training mode, on the weak labelled, weak
     unlabelled and strong unlabelled images together, at the largest
     resolution; its pass updates the BatchNorm running statistics;
  2. L^lab: label-smoothed CE of the max subnet on the labelled images;
  3. L^FM: pseudo-labels from the max subnet's weak unlabelled view
     (stop-gradient), mask max-probability > threshold, CE on the strong view;
  4. the min subnet (at the smallest resolution) and K random subnets (at the
     step's `resolution`, run with `lax.scan`) are distilled from the max
     subnet's weak-view predictions (stop-gradient) on labelled and, if the
     variant says so, unlabelled images. Their passes use batch statistics
     but do not update the running ones: those belong to the max subnet, and
     every other subnet is recalibrated before evaluation (`bn_calibration`).
The backward runs subnet by subnet, as OFA and AttentiveNAS do: the max subnet's
gradient first, then the min subnet's, then each random subnet's, accumulated
inside the scan. The sum is the gradient of the whole sandwich's loss, and a step's
peak memory is one subnet's forward and backward.
Teacher-less schemes (every `train.sampling` but sandwich, and `train.mode='single'`;
`schemes.py` says which subnets) train the step's N subnets, which share the step's
`resolution`, with L^lab (+ L^FM on each subnet's own pseudo-labels): no teacher, so
no distillation. One backward per subnet, accumulated in a `lax.scan` over them, and
their terms summed (mask_rate averaged). Each pass updates the running BatchNorm
statistics in turn, as OFA's successive PyTorch passes do; every evaluated subnet is
recalibrated anyway.
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
from tofa_jax.space import sampling
from tofa_jax.space.search_space import SearchSpace
from tofa_jax.train import losses, schemes
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


def global_rows(views: list[jax.Array], axis_name: str | None) -> jax.Array | None:
  """Each local image's row in the global batch `concatenate(views)` (every view
  split evenly over `axis_name`), or None outside `shard_map`."""
  if axis_name is None:
    return None
  device, devices = jax.lax.axis_index(axis_name), jax.lax.axis_size(axis_name)
  rows, start = [], 0
  for v in views:
    n = v.shape[0]
    rows.append(start + device * n + jnp.arange(n))
    start += n * devices
  return jnp.concatenate(rows)


def loss_and_grads(model, cfg: StepConfig, resolution: int) -> Callable:
  """`f(params, batch_stats, batch, subnets, key) -> ((loss, (batch_stats, metrics)),
  grads)`: what one step differentiates: the sandwich (`cfg.teacher`) with its random
  subnets at `resolution`, or the teacher-less subnets, all at `resolution`."""
  space = model.space
  max_arrays = arch_lib.to_arrays(space, sampling.max_arch(space))
  use_fm, use_dist_u = losses.terms(cfg.variant)
  largest, smallest = max(space.resolutions), min(space.resolutions)

  def apply(variables, views, arrays, key, res):
    """The subnet at `res` on the concatenated views (rows follow the global batch's
    order), each image rescaled on device (bicubic) from the batch's size."""
    return model.apply(variables, jnp.concatenate(views), arrays, train=True,
                       resolution=res, mutable=["batch_stats"],
                       rngs={"dropout": key}, rows=global_rows(views, model.axis_name))

  def sandwich_grads(params, batch_stats, batch, subnets, key):
    """The sandwich's loss and gradient, one backward per subnet: the max subnet's
    first (its logits, stop-gradient, are the teacher), then each distilled
    subnet's, accumulated. A step's peak memory is one subnet's forward and
    backward, not the whole sandwich's."""
    n_l = batch["labels"].shape[0]
    views = [batch["images"]]
    if cfg.uses_unlabelled:
      views.append(batch["unlabelled_weak"])
    if use_fm:
      views.append(batch["unlabelled_strong"])
    n_u = batch["unlabelled_weak"].shape[0] if cfg.uses_unlabelled else 0
    key_max, key_sub = jax.random.split(key)

    def max_loss(p):
      logits, new_vars = apply({"params": p, "batch_stats": batch_stats}, views, max_arrays,
                               key_max, largest)
      metrics = {"loss_lab": losses.labelled(logits[:n_l], batch["labels"],
                                             cfg.label_smoothing)}
      total = metrics["loss_lab"]
      if use_fm:
        fm, mask, _ = losses.fixmatch(jax.lax.stop_gradient(logits[n_l:n_l + n_u]),
                                      logits[n_l + n_u:], cfg.threshold, cfg.label_smoothing)
        metrics.update(loss_fm=fm, mask_rate=jnp.mean(mask))
        total = total + fm
      return total, (logits[:n_l + n_u], new_vars["batch_stats"], metrics)

    (total, (logits, new_stats, metrics)), grads = jax.value_and_grad(
        max_loss, has_aux=True)(params)
    teacher = jax.lax.stop_gradient(logits)
    x_sub = views[:2] if use_dist_u else views[:1]

    def one_subnet(carry, xs, res=resolution):
      arrays, k = xs

      def sub_loss(p):
        sub_logits, _ = apply({"params": p, "batch_stats": batch_stats}, x_sub, arrays, k, res)
        lab = losses.subnet_labelled(sub_logits[:n_l], teacher[:n_l], batch["labels"],
                                     beta=cfg.beta, temperature=cfg.temperature,
                                     alpha=cfg.label_smoothing)
        unl = (losses.distill(sub_logits[n_l:], teacher[n_l:], cfg.temperature)
               if use_dist_u else jnp.zeros(()))
        return lab + unl, (lab, unl)

      (_, terms), g = jax.value_and_grad(sub_loss, has_aux=True)(params)
      return jax.tree.map(jnp.add, carry, g), terms

    # The min subnet at the smallest resolution, then the random ones (one shape:
    # one scanned body) at the step's. When the step's resolution is the smallest,
    # the min subnet is the scan's first trip: one subnet body in the program instead
    # of two (a third less to compile), the same sums in the same order.
    n_sub = jax.tree.leaves(subnets)[0].shape[0]
    keys = jax.random.split(key_sub, n_sub)
    if resolution == smallest:
      grads, (lab_terms, unl_terms) = jax.lax.scan(one_subnet, grads, (subnets, keys))
    else:
      grads, min_terms = one_subnet(grads, jax.tree.map(lambda a: a[0], (subnets, keys)),
                                    res=smallest)
      lab_terms, unl_terms = [min_terms[0][None]], [min_terms[1][None]]
      if n_sub > 1:
        grads, (lab, unl) = jax.lax.scan(
            one_subnet, grads, jax.tree.map(lambda a: a[1:], (subnets, keys)))
        lab_terms.append(lab)
        unl_terms.append(unl)
      lab_terms, unl_terms = jnp.concatenate(lab_terms), jnp.concatenate(unl_terms)
    metrics["loss_dist_lab"] = jnp.sum(lab_terms)
    if use_dist_u:
      metrics["loss_dist_unlab"] = jnp.sum(unl_terms)
    total = total + metrics["loss_dist_lab"] + jnp.sum(unl_terms)
    return (total, (new_stats, metrics)), grads

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
        logits, new_vars = apply({"params": p, "batch_stats": stats}, views, arrays, k,
                                 resolution)
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

  return sandwich_grads if cfg.teacher else teacherless_grads


def pmean_together(tree: Any, axis: str) -> Any:
  """`lax.pmean(tree, axis)` as one all-reduce per dtype (one flat vector each):
  `pmean` of a tree all-reduces leaf by leaf, hundreds of small latency-bound
  collectives that only some backends combine."""
  leaves, treedef = jax.tree.flatten(tree)
  out = list(leaves)
  for dtype in sorted({x.dtype for x in leaves}, key=str):
    which = [i for i, x in enumerate(leaves) if x.dtype == dtype]
    flat = jax.lax.pmean(jnp.concatenate([leaves[i].reshape(-1) for i in which]), axis)
    parts = jnp.split(flat, np.cumsum([leaves[i].size for i in which])[:-1])
    for i, part in zip(which, parts, strict=True):
      out[i] = part.reshape(leaves[i].shape)
  return jax.tree.unflatten(treedef, out)


def make_train_step(model, tx: optax.GradientTransformation, cfg: StepConfig, mesh: Mesh,
                    schedule: optax.Schedule | None = None) -> Callable:
  """The jitted step. `batch` holds `images` (B_l, H, W, 3), `labels` (B_l,) and,
  when the variant uses unlabelled data, `unlabelled_weak`/`unlabelled_strong`
  (B_u, H, W, 3), at `cfg.image_size`. `subnets` are `stacked` arrays of
  `step_archs` and `resolution` (static) is their `step_resolution`."""
  axis = mesh.axis_names[0]
  sharded_model = model.clone(axis_name=axis)

  def sharded_grads(resolution: int) -> Callable:
    grads_fn = loss_and_grads(sharded_model, cfg, resolution)

    def local_grads(params, batch_stats, batch, subnets, key):
      """One device's share: its slice of the batch, BN moments and dropout masks
      over the global batch, and its partial gradient, reduced once at the end."""
      (loss, (batch_stats, metrics)), grads = grads_fn(params, batch_stats, batch, subnets,
                                                       key)
      if sharded_model.bn_sync == "global":
        loss, metrics, grads = pmean_together((loss, metrics, grads), axis)
      else:  # each device's statistics are its own: keep their mean
        loss, metrics, grads, batch_stats = pmean_together(
            (loss, metrics, grads, batch_stats), axis)
      return (loss, (batch_stats, metrics)), grads

    # check_vma=False: the parameters enter replicated and each device
    # differentiates its own copy, so gradients stay per device through the
    # subnet scan (no reduction per subnet) until the one pmean above.
    return jax.shard_map(
        local_grads, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec(),
                                          PartitionSpec(axis), PartitionSpec(), PartitionSpec()),
        out_specs=PartitionSpec(), check_vma=False)

  def step(state: TrainState, batch: dict, subnets: dict, resolution: int
           ) -> tuple[TrainState, dict]:
    key = jax.random.fold_in(state.rng, state.step)
    (loss, (batch_stats, metrics)), grads = sharded_grads(resolution)(
        state.params, state.batch_stats, batch, subnets, key)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics["loss"] = loss
    if schedule is not None:
      metrics["lr"] = schedule(state.step)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state)
    return new_state, metrics

  replicated = NamedSharding(mesh, PartitionSpec())
  sharded = NamedSharding(mesh, PartitionSpec("data"))
  return jax.jit(step, in_shardings=(replicated, sharded, replicated),
                 out_shardings=(replicated, replicated), donate_argnums=(0,),
                 static_argnums=(3,))

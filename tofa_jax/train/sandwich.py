"""The sandwich step (TOFA Algorithm 1, lines 5-17) as three kinds of XLA program.

One sandwich step runs, in order, on the same batch:
  1. `teacher`: the max subnet's forward and backward at the largest resolution, in
     training mode, on the weak labelled, weak unlabelled and strong unlabelled images
     together (its pass updates the BatchNorm running statistics); L^lab, label-smoothed
     CE on the labelled images; L^FM, pseudo-labels from its weak unlabelled view
     (stop-gradient) kept where the max probability passes the threshold, CE on the
     strong view. Its logits on the weak views, stop-gradient, are the teacher.
  2. `subnet`, once per distilled subnet: the min subnet at the smallest resolution,
     then each random subnet at the step's, distilled from the teacher on the labelled
     and, if the variant says so, unlabelled images. Batch statistics; the running ones
     are the max subnet's (every other subnet is recalibrated before evaluation).
  3. `update`: one all-reduce of every device's summed gradient and loss terms (one
     flat vector per dtype, `collectives.pmean_together`), then the optimiser.
Each is its own program, compiled once per run: the teacher once, a subnet's pass once
per resolution (the min subnet's is the random subnets' program at the smallest
resolution) and the update once; R + 1 network bodies for R resolutions, one per
program. A step compiled as one program per resolution held up to three bodies (max,
min, random) and compiled the max and min subnets' R times over.

The parts hand each other device arrays (dispatch is asynchronous; nothing returns to
the host between them). Each device's gradient sum and loss terms stay its own, with a
leading device axis (`data`-sharded), donated from part to part until `update`. Every
part takes the whole train state, so its compiled memory counts what is live while it
runs; a step's peak is one subnet's forward and backward.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from tofa_jax.space import arch as arch_lib
from tofa_jax.space import sampling
from tofa_jax.train import collectives, forward, losses


def per_device(tree):
  """A device's local values with the leading device axis (`out_specs=P(axis)`)."""
  return jax.tree.map(lambda a: a[None], tree)


def local(tree):
  """This device's values of a per-device tree (`in_specs=P(axis)`)."""
  return jax.tree.map(lambda a: a[0], tree)


def views(batch: dict, cfg) -> tuple[list[jax.Array], int, int]:
  """The images a step's passes see, in order (labelled, weak unlabelled, strong
  unlabelled, as far as the variant uses them), and the labelled and unlabelled counts."""
  use_fm, _ = losses.terms(cfg.variant)
  out = [batch["images"]]
  if cfg.uses_unlabelled:
    out.append(batch["unlabelled_weak"])
  if use_fm:
    out.append(batch["unlabelled_strong"])
  n_u = batch["unlabelled_weak"].shape[0] if cfg.uses_unlabelled else 0
  return out, batch["labels"].shape[0], n_u


def per_device_stats(model) -> bool:
  """Whether the teacher's new running statistics differ per device (`model.bn_sync`
  'device': averaged in `update`) or are the same everywhere ('global')."""
  return model.bn_sync != "global"


def teacher(model, cfg, mesh: Mesh) -> Callable:
  """`f(state, batch) -> (acc, teacher logits, subnet key, new batch_stats)`: the max
  subnet's pass. `acc` holds each device's gradient and loss terms (`grads`, `terms`)."""
  axis = mesh.axis_names[0]
  space = model.space
  max_arrays = arch_lib.to_arrays(space, sampling.max_arch(space))
  use_fm, use_dist_u = losses.terms(cfg.variant)
  own_stats = per_device_stats(model)

  def on_device(params, batch_stats, batch, key):
    xs, n_l, n_u = views(batch, cfg)

    def max_loss(p):
      logits, new_vars = forward.train_apply(model, {"params": p, "batch_stats": batch_stats},
                                             xs, max_arrays, key, max(space.resolutions))
      terms = {"loss_lab": losses.labelled(logits[:n_l], batch["labels"],
                                           cfg.label_smoothing)}
      total = terms["loss_lab"]
      if use_fm:
        fm, mask, _ = losses.fixmatch(jax.lax.stop_gradient(logits[n_l:n_l + n_u]),
                                      logits[n_l + n_u:], cfg.threshold, cfg.label_smoothing)
        terms.update(loss_fm=fm, mask_rate=jnp.mean(mask))
        total = total + fm
      return total, (logits[:n_l + n_u], new_vars["batch_stats"], terms)

    (_, (logits, stats, terms)), grads = jax.value_and_grad(max_loss, has_aux=True)(params)
    terms["loss_dist_lab"] = jnp.zeros(())
    if use_dist_u:
      terms["loss_dist_unlab"] = jnp.zeros(())
    acc = per_device({"grads": grads, "terms": terms})
    return acc, jax.lax.stop_gradient(logits), per_device(stats) if own_stats else stats

  def teacher_step(state, batch):
    key_max, key_sub = jax.random.split(jax.random.fold_in(state.rng, state.step))
    acc, logits, stats = jax.shard_map(
        on_device, mesh=mesh, in_specs=(P(), P(), P(axis), P()),
        out_specs=(P(axis), P(axis), P(axis) if own_stats else P()), check_vma=False)(
            state.params, state.batch_stats, batch, key_max)
    return acc, logits, key_sub, stats

  return teacher_step


def subnet(model, cfg, mesh: Mesh, resolution: int) -> Callable:
  """`f(state, batch, teacher, subnets, key, index, acc) -> acc`: subnet `index` of the
  step's stacked `subnets` at `resolution`, distilled from `teacher` (the max subnet's
  logits on the weak views), its gradient and terms added to `acc`. Its dropout key is
  `split(key, len(subnets))[index]`."""
  axis = mesh.axis_names[0]
  _, use_dist_u = losses.terms(cfg.variant)

  def on_device(params, batch_stats, batch, teacher_logits, arrays, key, acc):
    xs, n_l, _ = views(batch, cfg)

    def sub_loss(p):
      logits, _ = forward.train_apply(model, {"params": p, "batch_stats": batch_stats},
                                      xs[:2] if use_dist_u else xs[:1], arrays, key, resolution)
      lab = losses.subnet_labelled(logits[:n_l], teacher_logits[:n_l], batch["labels"],
                                   beta=cfg.beta, temperature=cfg.temperature,
                                   alpha=cfg.label_smoothing)
      unl = (losses.distill(logits[n_l:], teacher_logits[n_l:], cfg.temperature)
             if use_dist_u else jnp.zeros(()))
      return lab + unl, (lab, unl)

    (_, (lab, unl)), g = jax.value_and_grad(sub_loss, has_aux=True)(params)
    acc = local(acc)
    terms = dict(acc["terms"], loss_dist_lab=acc["terms"]["loss_dist_lab"] + lab)
    if use_dist_u:
      terms["loss_dist_unlab"] = acc["terms"]["loss_dist_unlab"] + unl
    return per_device({"grads": jax.tree.map(jnp.add, acc["grads"], g), "terms": terms})

  def subnet_step(state, batch, teacher_logits, subnets, key, index, acc):
    n = jax.tree.leaves(subnets)[0].shape[0]
    arrays = jax.tree.map(lambda a: a[index], subnets)
    return jax.shard_map(
        on_device, mesh=mesh, in_specs=(P(), P(), P(axis), P(axis), P(), P(), P(axis)),
        out_specs=P(axis), check_vma=False)(
            state.params, state.batch_stats, batch, teacher_logits, arrays,
            jax.random.split(key, n)[index], acc)

  return subnet_step


def update(model, tx: optax.GradientTransformation, mesh: Mesh,
           schedule: optax.Schedule | None) -> Callable:
  """`f(state, acc, batch_stats) -> (state, metrics)`: every device's sums averaged in
  one all-reduce per dtype, then the optimiser's update."""
  axis = mesh.axis_names[0]
  own_stats = per_device_stats(model)

  def on_device(acc, stats):
    if own_stats:  # each device's statistics are its own: keep their mean
      return collectives.pmean_together((local(acc), local(stats)), axis)
    return collectives.pmean_together(local(acc), axis), stats

  def update_step(state, acc, batch_stats):
    acc, batch_stats = jax.shard_map(
        on_device, mesh=mesh, in_specs=(P(axis), P(axis) if own_stats else P()),
        out_specs=(P(), P()), check_vma=False)(acc, batch_stats)
    updates, opt_state = tx.update(acc["grads"], state.opt_state, state.params)
    metrics = dict(acc["terms"])
    metrics["loss"] = sum(v for k, v in metrics.items() if k != "mask_rate")
    if schedule is not None:
      metrics["lr"] = schedule(state.step)
    return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                         batch_stats=batch_stats, opt_state=opt_state), metrics

  return update_step

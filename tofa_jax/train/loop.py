"""TOFA supernet training (Algorithm 1) and evaluation: `train_and_evaluate`.

Reads `config` (see configs/default.py), builds the supernet, starts it from a
pretrained checkpoint (`config.init`), and runs the jitted data-parallel step
for `train.steps` steps with on-device augmentation, the subnets of
`train.sampling` (or, with `train.mode='single'`, the one `train.arch`), the subnet
record Omega, periodic checkpoints (resumed automatically from `workdir`),
TensorBoard metrics and evaluation of the max and min subnets (single: the arch)
after BN recalibration. Epochs (warm-up, per-epoch schemes) are `epochs.py`'s.
Every train program the schedule's steps can run (`train_step.programs_of`: the
sandwich's teacher, subnet programs and update, or a teacher-less step whole) compiles
before step 1, where `train.remat=auto` is resolved per program (`programs.py`).

The loop never waits on the device between log steps: metrics stay on device
(`metrics.StepMetrics`), the next batch is placed and augmented while the step
runs, and the host runs at most `MAX_STEPS_AHEAD` steps ahead of the device.
Log, checkpoint and evaluation steps read the metrics first, so a loss that
turned inf or nan stops the run there, before anything is saved.

Reliability (docs/reliability.md): the workdir is locked for the run's lifetime;
a resume checks that the workdir was trained on the same space, dataset and class
count, and falls back to the newest readable checkpoint; checkpoints are written
in the background and every save is finished when this function returns or
raises; a SIGTERM before the first new step ends the run at once.
"""

from __future__ import annotations

import collections
import functools
import time

import jax
import jax.numpy as jnp
from etils import epath
from jax.sharding import NamedSharding, PartitionSpec

from tofa_jax.data import augment, calibration, device_prefetch, input_pipeline, loading
from tofa_jax.model import supernet
from tofa_jax.runtime import (
    compilation_cache,
    distributed,
    saved_config,
    termination,
    workdir_lock,
)
from tofa_jax.runtime import mesh as mesh_lib
from tofa_jax.runtime.mesh import global_array
from tofa_jax.space import search_space
from tofa_jax.train import (
    checkpointing,
    epochs,
    optim,
    run_identity,
    schemes,
    step_log,
    subnet_record,
)
from tofa_jax.train import metrics as metrics_lib
from tofa_jax.train import programs as programs_lib
from tofa_jax.train import step as train_step
from tofa_jax.train.evaluator import Evaluator, subnet_names
from tofa_jax.weights import named_starts, pretrained

MAX_STEPS_AHEAD = 2  # steps dispatched but unfinished; bounds the batches held on device


class NonFiniteLoss(RuntimeError):
  pass


@jax.jit
def _finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def _all_finite(state) -> bool:
  """Whether every floating-point array of `state` is finite (checked before a save)."""
  return bool(_finite(state))


def _say(text: str) -> None:
  """A progress line for the user (process 0 only)."""
  if jax.process_index() == 0:
    print(text, flush=True)


def save_run_config(config, workdir: str, mean, std) -> None:
  """workdir/config.json: the run's config with the normalisation it resolved,
  which `python -m tofa_jax.palette --workdir=DIR` reads back."""
  resolved = config.copy_and_resolve_references()
  with resolved.unlocked():
    resolved.data.mean, resolved.data.std = tuple(mean), tuple(std)
  (epath.Path(workdir) / saved_config.FILE).write_text(resolved.to_json_best_effort(indent=1))


def _check(config, data: loading.Data, cfg: train_step.StepConfig, space) -> None:
  n = jax.device_count()
  mesh_lib.check_batch_divides("train.batch_size", config.train.batch_size, n)
  if cfg.uses_unlabelled:
    mesh_lib.check_batch_divides("train.unlabelled_batch_size",
                                   config.train.unlabelled_batch_size, n)
    if len(data.unlabelled_idx) == 0:
      raise ValueError(f"loss.variant={cfg.variant!r} needs unlabelled data, but all training "
                       "data is labelled; use loss.variant='lab' (fully labelled mode)")


def train_and_evaluate(config, workdir: str) -> dict[str, float]:
  """Trains the supernet; returns the final evaluation metrics."""
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  lock = None
  if jax.process_index() == 0 and not step_log.is_object_store(workdir):
    lock = workdir_lock.WorkdirLock(workdir)
    took_over = lock.acquire()
    if took_over:
      _say(took_over)
  # One process watches SIGTERM itself; several agree on the step to stop at through
  # JAX's preemption sync point (orbax `reached_preemption`).
  sigterm = None if jax.process_count() > 1 else termination.SigtermHandler("nothing trained yet")
  ckpt = None
  try:
    ckpt = checkpointing.Checkpointer(workdir)
    return _train(config, workdir, ckpt, sigterm)
  finally:
    if ckpt is not None:
      ckpt.close()  # waits for the last save: every exit leaves its checkpoints complete
    if sigterm is not None:
      sigterm.restore()
    if lock is not None:
      lock.release()


def _train(config, workdir: str, ckpt: checkpointing.Checkpointer,
           sigterm: termination.SigtermHandler | None) -> dict[str, float]:
  if jax.process_count() > 1:  # every process must run one config (seeds included)
    distributed.check_processes_agree("run a different config", config.to_json_best_effort())
  compilation_cache.enable(config.get("jax_cache_dir", ""))
  space = search_space.resolve(config.model)
  cfg = train_step.step_config(config, space)
  # Fetched (init.download) and hashed before the data: a failed download costs no data load.
  start_file = pretrained.start_file(config.init)
  if start_file is not None:
    _say(pretrained.describe_file(start_file))
  data = loading.load_data(config)
  _check(config, data, cfg, space)
  epoch = epochs.of_data(config, data, cfg.uses_unlabelled)
  schedule = schemes.from_config(config, space, epoch.steps)
  # Before anything compiles: the figures need the data's sizes.
  schedule.check_epochs()
  _say(f"loading data ({len(data.labelled_idx)} labelled, "
       f"{len(data.unlabelled_idx) if cfg.uses_unlabelled else 0} unlabelled; "
       f"{config.data.name}, {data.num_classes} classes, at {cfg.image_size} px)")
  warmup = epochs.run_warmup(config.optim, epoch.steps, int(config.train.steps))
  warm_key, warm_value = epochs.warmup_form(config.optim)
  _say(f"{epoch.describe()}; {warmup} warm-up step{'s' * (warmup != 1)} "
       f"({warm_key}={warm_value:g})")
  fitted = epochs.fitted_warmup_note(config.optim, epoch, int(config.train.steps))
  if fitted:
    _say(fitted)
  if subnet_names(config):  # before anything compiles: too few images for a batch stops here
    _say(calibration.describe(len(calibration.of_config(config, data)), data))
  num_classes = data.num_classes
  run_identity.check_or_record(workdir, run_identity.of(config, num_classes, start_file),
                               resuming=ckpt.latest_step() is not None,
                               write=jax.process_index() == 0)
  model = programs_lib.model_of(config, space, num_classes)  # train.remat=auto: see compile_run
  variables = termination.interruptible(lambda: supernet.init_variables(
      model, seed=config.seed, resolution=cfg.image_size))
  mean, std = pretrained.normalization(config)
  if config.init.checkpoint != named_starts.RANDOM:
    variables, start_from = pretrained.init_from_checkpoint(config.init, space, variables,
                                                            num_classes)
    _say(start_from.describe(config.init.checkpoint))
  else:
    _say("starting from random weights (init.checkpoint='random')")

  if jax.process_index() == 0:
    save_run_config(config, workdir, mean, std)
  total = int(config.train.steps)
  tx, sched = optim.make(config.optim, epoch.steps, total)
  mesh = mesh_lib.make_mesh()
  batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
  aug_cfg = augment.AugmentConfig(**config.augment)

  @functools.partial(jax.jit, out_shardings=batch_sharding)
  def weak_view(key, images):
    return augment.normalize(augment.weak(key, images, aug_cfg), mean, std)

  @functools.partial(jax.jit, out_shardings=batch_sharding)
  def strong_view(key, images):
    return augment.normalize(augment.strong(key, images, aug_cfg), mean, std)

  @functools.partial(jax.jit, out_shardings=batch_sharding)
  def plain_view(images):
    return augment.normalize(augment.to_float(images), mean, std)

  pid, pcount = jax.process_index(), jax.process_count()
  res = cfg.image_size  # loaded at one size; each subnet's input rescaled on device
  lab_iter = input_pipeline.train_stream(
      data.train, data.labelled_idx, config.train.batch_size, res, config.seed,
      pid, pcount, **input_pipeline.reader_options(config.data, workdir))
  unl_iter = None
  if cfg.uses_unlabelled:
    unl_iter = input_pipeline.train_stream(
        data.unlabelled, data.unlabelled_idx, config.train.unlabelled_batch_size,
        res, config.seed + 1, pid, pcount, **input_pipeline.reader_options(config.data, workdir))

  # Committed, replicated from the start: the step's outputs are, and a first call
  # on host arrays would make the second call compile the step again.
  state = jax.device_put(train_step.init_state(variables, tx, config.seed),
                         NamedSharding(mesh, PartitionSpec()))
  record = subnet_record.SubnetRecord()
  subnet_log = subnet_record.SubnetLog(str(epath.Path(workdir) / "subnets.jsonl"),
                                       enabled=pid == 0)
  metrics_log = step_log.StepLog(str(epath.Path(workdir) / step_log.METRICS_FILE),
                                 enabled=pid == 0)

  def apply_meta(meta: dict) -> None:
    """Omega and the iterator positions of a checkpoint; raises on a damaged one."""
    nonlocal record
    record = subnet_record.SubnetRecord.from_state(meta["omega"])
    lab_iter.set_state(meta["labelled_iterator"])
    if unl_iter is not None:
      unl_iter.set_state(meta["unlabelled_iterator"])

  restored = ckpt.restore_latest(state, check_meta=apply_meta)
  start = 0
  if restored is not None:
    start, state, _ = restored
    for log in (subnet_log, metrics_log):
      warning = log.truncate(start)
      if warning:
        _say(warning)
    _say(f"resumed from step {start} of {total}")
    if sigterm is not None:
      sigterm.nothing_new = f"the newest checkpoint is step {start}, in {ckpt.directory}"
  speed = metrics_lib.Throughput(start, total, config.train.batch_size + (
      config.train.unlabelled_batch_size if cfg.uses_unlabelled else 0))
  # Every program before step 1: none compiles mid-run when its resolution is drawn.
  t = time.perf_counter()
  batch_shapes = train_step.abstract_batch(cfg, config.train.batch_size,
                                           config.train.unlabelled_batch_size, mesh)
  programs, remats = programs_lib.compile_run(
      config.train.remat,
      lambda r: train_step.make_train_step(model.clone(remat=r), tx, cfg, mesh, sched),
      state, batch_shapes, space, programs_lib.of_schedule(schedule, space, cfg))
  if pcount > 1 and config.train.remat == "auto":  # each process asked its own device
    distributed.check_processes_agree(
        "picked other train.remat=auto settings (set train.remat=none or layer)",
        sorted([p.kind, p.resolution, p.subnets, r] for p, r in remats.items()))
  speed.exclude(time.perf_counter() - t)

  def compiled(key: programs_lib.Program):
    if key not in programs:  # a bug: Schedule.programs must list every step's program
      raise RuntimeError(f"no compiled train program {key}; compiled: "
                         f"{sorted(programs, key=programs_lib.Program.sort_key)}")
    return programs[key]

  aug_key = jax.random.PRNGKey(config.seed + 7)

  def batches():
    """(step, batch on the devices, iterator positions after it) from `start` on."""
    for step in range(start, total):
      lab = next(lab_iter)
      k_l, k_w, k_s = jax.random.split(jax.random.fold_in(aug_key, step), 3)
      batch = {"images": weak_view(k_l, global_array(batch_sharding, lab["image"])),
               "labels": global_array(batch_sharding, lab["label"])}
      positions = {"labelled_iterator": lab_iter.get_state()}
      if unl_iter is not None:
        unl = global_array(batch_sharding, next(unl_iter)["image"])
        batch["unlabelled_weak"] = weak_view(k_w, unl)
        batch["unlabelled_strong"] = strong_view(k_s, unl)
        positions["unlabelled_iterator"] = unl_iter.get_state()
      yield step, batch, positions

  writer = metrics_lib.Writer(workdir, enabled=pid == 0, log=metrics_log)
  step_metrics = metrics_lib.StepMetrics(start)
  evaluator = Evaluator(config, model, space, data, plain_view, batch_sharding,
                        workdir=workdir)
  multi = pcount > 1
  stop_at = int(config.train.get("stop_after_steps", -1))
  every = lambda n, i: bool(n) and i % n == 0  # noqa: E731
  last_saved = start
  in_flight = collections.deque()  # losses of the steps dispatched and maybe unfinished
  final: dict[str, float] = {}
  try:
    for step, batch, positions in device_prefetch.prefetch(batches(), size=2):
      archs = schedule.archs(space, config.seed, step)
      if multi and step == start:  # by construction; checked once per run
        distributed.check_processes_agree(f"sample different subnets at step {step + 1}",
                                          [a.to_json(True) for a in archs])
      state, m = train_step.run(compiled, cfg, space, mesh, state, batch,
                                train_step.stacked(space, archs),
                                train_step.step_resolution(archs))
      if sigterm is not None and step == start:
        sigterm.something_to_save()  # a SIGTERM now checkpoints this step, then stops
      step_metrics.add(m)
      ckpt.check()  # a save the disk had no room for stops the run here
      in_flight.append(m["loss"])
      if len(in_flight) > MAX_STEPS_AHEAD:
        in_flight.popleft().block_until_ready()
      iteration = step + 1  # Algorithm 1 counts iterations from 1
      record.update(archs, iteration)
      subnet_log.append(iteration, archs)
      preempted = ckpt.reached_preemption(iteration) if multi else sigterm.raised
      done = iteration in (total, stop_at) or preempted
      log_now = every(config.train.log_every, iteration) or iteration == total
      save_now = every(config.train.checkpoint_every, iteration) or done
      eval_now = iteration == total or every(config.train.eval_every, iteration)
      if log_now or save_now or eval_now:  # the host reads the device only here
        bad = step_metrics.first_non_finite()
        if bad is not None:
          raise NonFiniteLoss(f"loss is {bad[1]} at step {bad[0]}; stopping. The last good "
                              f"checkpoint (step {last_saved}) is in {ckpt.directory}")
      if log_now:
        scalars = step_metrics.means(iteration)
        scalars.update(speed.report(iteration))
        writer.write_scalars(iteration, scalars, prefix="train/")
      if save_now:
        if not _all_finite(state):
          raise NonFiniteLoss(f"the parameters are not finite after step {iteration} (the "
                              f"losses were finite); stopping. The last good checkpoint (step "
                              f"{last_saved}) is in {ckpt.directory}")
        ckpt.save(iteration, state, {"omega": record.to_state(), **positions})
        subnet_log.flush()
        metrics_log.flush()
        last_saved = iteration
      if eval_now:
        t = time.perf_counter()
        final = evaluator(state)
        writer.write_scalars(iteration, final, prefix="eval/")
        speed.exclude(time.perf_counter() - t)
      if done:
        break
  finally:
    writer.flush()
    writer.close()
  return final

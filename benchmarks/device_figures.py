"""One part of `benchmarks/device_check.sh`: figures of a config's train step, as key=value lines.

  python benchmarks/device_figures.py --config=configs/aircraft.py --prefix=base \
      [--programs] [--subnets] [--steps=5] [--lock=FILE] [--config.model.x=y ...]

Compiles the XLA programs (`train_step.Program`) of one TOFA step (`train/step.py`)
with its random subnets at the config's largest resolution: for the sandwich the
teacher (the max subnet), the subnet programs (the min subnet's at the smallest
resolution, the random subnets' at the largest) and the update (`train/sandwich.py`);
for a teacher-less scheme its one program. It then runs such steps
(`train_step.run` with the compiled programs) on synthetic batches (no dataset: the
device machine has none), each step with its own sampled subnets. Prints

  program_<p>_compile_s    per program: its lowering + compile seconds
  program_<p>_compiled_gib per program: XLA's memory analysis of it (temp + arguments
                           + outputs - aliased; each program takes the whole state)
  <prefix>_compile_s       lowering + compiling the step's programs (their sum)
  <prefix>_compiled_gib    the step's peak: the most of its programs' GiB
  <prefix>_step_s          mean wall time of `--steps` steps after one warm-up step
  <prefix>_images_per_s    (labelled + unlabelled batch) / step_s, train_throughput's measure

where `<p>` is the program's label (`Program.label()`) as a key: `teacher_<px>`,
`subnet_<px>`, `update`, or `<px>` for a teacher-less step's program.

`--programs` compiles every program the config's schedule can run
(`programs.of_schedule`: every training resolution's) instead of only the step's, on
`--compile_threads` threads (lowering on the main thread, the XLA compiles outside the
GIL, so a program's seconds count time alongside others' compiles where threads > 1);
the step figures then use the step's programs among them.

`--subnets` also times the forward + backward of one subnet (one program, the subnet
as data) for the space's min and max subnets: `<prefix>_min_subnet_s`,
`<prefix>_max_subnet_s`. Conditional execution makes the min cheaper; masked, both cost
the max.

`--lock=FILE` holds an exclusive lock on FILE while running (not while compiling), so
that parts started side by side to overlap their compiles time their steps alone.
`model.conditional` 'on'/'off' is applied to the built model here too, so the check
times both whatever `auto` resolves to.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags
from jax.sharding import NamedSharding, PartitionSpec
from ml_collections import config_flags

sys.path.insert(0, ".")

from tofa_jax.model import supernet  # noqa: E402
from tofa_jax.runtime import memory  # noqa: E402
from tofa_jax.runtime import mesh as mesh_lib  # noqa: E402
from tofa_jax.space import arch as arch_lib  # noqa: E402
from tofa_jax.space import sampling, search_space  # noqa: E402
from tofa_jax.train import optim, programs, schemes  # noqa: E402
from tofa_jax.train import step as train_step  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "training config", lock_config=True)
_PREFIX = flags.DEFINE_string("prefix", "base", "key prefix of the step figures")
_PROGRAMS = flags.DEFINE_bool("programs", False, "compile every program of the schedule "
                               "(every training resolution's) first")
_THREADS = flags.DEFINE_integer("compile_threads", 1, "threads compiling the programs")
_STEPS = flags.DEFINE_integer("steps", 5, "timed steps")
_SUBNETS = flags.DEFINE_bool("subnets", False, "also time the min and max subnet")
_LOCK = flags.DEFINE_string("lock", "", "lock this file while running")
_CLASSES = flags.DEFINE_integer("num_classes", 100, "classifier outputs (aircraft: 100)")


def emit(key: str, value: float) -> None:
  print(f"{key}={value:.4g}", flush=True)


def build(config):
  """(space, StepConfig, model, tx, mesh, step: its programs lowered on demand) of the
  config."""
  space = search_space.resolve(config.model)
  cfg = train_step.step_config(config, space)
  model = supernet.from_config(config, space, _CLASSES.value)
  conditional = config.model.get("conditional", "auto")
  if conditional in ("on", "off"):
    model = model.clone(conditional=conditional == "on")
  tx, _ = optim.make(config.optim, 100, int(config.train.steps))
  mesh = mesh_lib.make_mesh()
  return space, cfg, model, tx, mesh, train_step.make_train_step(model, tx, cfg, mesh)


def key_of(program: train_step.Program) -> str:
  """A program's label as a key: 'teacher, 320 px' -> 'teacher_320', '224 px' -> '224'."""
  return program.label().replace(" px", "").replace(", ", "_")


def compile_programs(step, state, batch, space, todo, threads: int) -> dict:
  """{program: (compiled, seconds)} for each of `todo`, printing its two figures:
  lowering on this thread, the XLA compiles on `threads` threads."""
  def compile_one(lowered, lower_s):
    start = time.perf_counter()
    compiled = lowered.compile()
    return compiled, lower_s + time.perf_counter() - start

  with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:
    futures = {}
    for p in todo:
      start = time.perf_counter()
      lowered = programs.lower(step, state, batch, space, p)
      futures[p] = pool.submit(compile_one, lowered, time.perf_counter() - start)
    done = {p: f.result() for p, f in futures.items()}
  for p, (compiled, seconds) in done.items():
    emit(f"program_{key_of(p)}_compile_s", seconds)
    emit(f"program_{key_of(p)}_compiled_gib", memory.compiled_gib(compiled))
  return done


def synthetic(abstract: dict, classes: int) -> dict:
  rng = np.random.default_rng(0)
  return {k: jax.device_put((rng.standard_normal(v.shape) if v.dtype == np.float32 else
                             rng.integers(0, classes, v.shape)).astype(v.dtype), v.sharding)
          for k, v in abstract.items()}


def step_figures(config, prefix: str) -> None:
  space, cfg, model, tx, mesh, step = build(config)
  state_shape, batch_shape = programs.abstract_args(config, model, tx, cfg, mesh)
  res = max(space.resolutions)
  archs = [train_step.step_archs(space, cfg, config.seed, i, 0) for i in range(_STEPS.value + 1)]
  subnets = [train_step.stacked(space, a) for a in archs]
  mine = train_step.programs_of(cfg, space, res, len(archs[0]))  # a step's, in order
  todo = set(mine) | (set(programs.of_schedule(schemes.from_config(config, space), space, cfg))
                      if _PROGRAMS.value else set())
  todo = sorted(todo, key=train_step.Program.sort_key)
  done = compile_programs(step, state_shape, batch_shape, space, todo, _THREADS.value)
  compiled = {p: done[p][0] for p in mine}
  emit(f"{prefix}_compile_s", sum(done[p][1] for p in set(mine)))
  emit(f"{prefix}_compiled_gib", max(memory.compiled_gib(c) for c in compiled.values()))
  fwd_bwd = subnet_program(model, state_shape, batch_shape, space, res) if _SUBNETS.value else None
  with _locked(_LOCK.value):
    state, batch = _run(config, cfg, space, model, tx, mesh, compiled, batch_shape, subnets,
                        res, prefix)
    if fwd_bwd is not None:
      for name, arch in (("min", sampling.min_arch(space)), ("max", sampling.max_arch(space))):
        arrays = jax.tree.map(jnp.asarray, arch_lib.to_arrays(space, arch))
        args = (state.params, state.batch_stats, batch["images"], batch["labels"], arrays)
        jax.block_until_ready(fwd_bwd(*args))
        start = time.perf_counter()
        for _ in range(_STEPS.value):
          out = fwd_bwd(*args)
        jax.block_until_ready(out)
        emit(f"{prefix}_{name}_subnet_s", (time.perf_counter() - start) / _STEPS.value)


@contextlib.contextmanager
def _locked(path: str):
  if not path:
    yield
    return
  with open(path, "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def _run(config, cfg, space, model, tx, mesh, compiled, batch_shape, subnets, res, prefix):
  """Runs steps at `res` on synthetic data with the `compiled` programs
  (`train_step.run`); returns the final state and the batch."""
  variables = supernet.init_variables(model, 0, cfg.image_size)
  state = jax.device_put(train_step.init_state(variables, tx, 0),
                         NamedSharding(mesh, PartitionSpec()))
  batch = synthetic(batch_shape, _CLASSES.value)
  fns = compiled.__getitem__
  state, m = train_step.run(fns, cfg, space, mesh, state, batch, subnets[0], res)
  jax.block_until_ready(m)
  start = time.perf_counter()
  for s in subnets[1:]:
    state, m = train_step.run(fns, cfg, space, mesh, state, batch, s, res)
  jax.block_until_ready(m)
  step_s = (time.perf_counter() - start) / _STEPS.value
  images = config.train.batch_size + (config.train.unlabelled_batch_size
                                      if cfg.uses_unlabelled else 0)
  emit(f"{prefix}_step_s", step_s)
  emit(f"{prefix}_images_per_s", images / step_s)
  return state, batch


def subnet_program(model, state, batch, space, res: int):
  """Forward + backward of one subnet on the labelled images, compiled (the subnet is
  data, so the min and the max share it)."""
  def fwd_bwd(params, stats, images, labels, arrays):
    def loss(p):
      logits, new = model.apply({"params": p, "batch_stats": stats}, images, arrays,
                                train=True, resolution=res, mutable=["batch_stats"],
                                rngs={"dropout": jax.random.PRNGKey(0)})
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), new
    return jax.grad(loss, has_aux=True)(params)

  arrays = jax.tree.map(jnp.asarray, arch_lib.to_arrays(space, sampling.max_arch(space)))
  unsharded = lambda t: jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype), t)  # noqa: E731
  return jax.jit(fwd_bwd).lower(unsharded(state.params), unsharded(state.batch_stats),
                                unsharded(batch["images"]), unsharded(batch["labels"]),
                                arrays).compile()


def main(argv):
  del argv
  config = _CONFIG.value
  step_figures(config, _PREFIX.value)


if __name__ == "__main__":
  app.run(main)

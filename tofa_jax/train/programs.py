"""The run's train programs: which exist, their abstract arguments, and compiling them
all before step 1.

A step's subnets come as stacked arrays, so every (resolution, number of subnets) that
`schemes.Schedule.programs` lists is one kind of step, and `train_step.programs_of` says
which XLA programs (`Program`) it runs: a teacher-less step is one program; a sandwich
step runs the teacher, one subnet program per distilled subnet (one per resolution) and
the update (`sandwich.py`), so the programs of every resolution share the teacher and
the update. `compile_all` compiles each program once before the first step, one line per
program (`compiling program k/R (<px>) ...` or `(teacher, <px>)`, `(subnet, <px>)`,
`(update)`, then its time and GiB): lowering runs on the main thread, the XLA
compiles on up to `workers()` daemon threads (a compile is C++ that releases the GIL,
and XLA:GPU's autotuning and LLVM leave cores idle), while the main thread waits in
short slices so a SIGTERM still ends the run at once (`termination.interruptible`'s
reason). Daemon threads, not a ThreadPoolExecutor: the interpreter joins an executor's
threads at exit, which would hold a terminated process until its compiles end.

`compile_run` adds `train.remat=auto`: each program is compiled without remat and kept
where its compiled memory fits the device (`memory.device_limit_bytes`, with
`memory.HEADROOM`), else compiled again with `layer`. A backend that reports no limit
(the CPU) gets `layer` without compiling `none`.

`lower` is also what `benchmarks/lowered_ops.py` counts, for platforms this machine lacks;
`abstract_run` is the whole abstract setup the compile benchmarks share.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from tofa_jax.model import supernet
from tofa_jax.runtime import memory, memory_maps
from tofa_jax.runtime import mesh as mesh_lib
from tofa_jax.space import arch as arch_lib
from tofa_jax.space import sampling, search_space
from tofa_jax.space.search_space import SearchSpace
from tofa_jax.train import optim, schemes
from tofa_jax.train import step as train_step

_POLL_S = 0.2  # the main thread's wait slice: how soon a signal handler runs


Program = train_step.Program


def of_schedule(schedule: schemes.Schedule, space: SearchSpace,
                cfg: train_step.StepConfig) -> list[Program]:
  """Every program a run can take, each once: the teacher first, then by resolution."""
  return sorted({p for r, n in schedule.programs(space)
                 for p in train_step.programs_of(cfg, space, r, n)},
                key=Program.sort_key)


def of_archs(archs: Sequence[arch_lib.Arch], cfg: train_step.StepConfig,
             space: SearchSpace) -> list[Program]:
  """The programs that train `archs` (one step's subnets), in order."""
  return train_step.programs_of(cfg, space, train_step.step_resolution(list(archs)),
                                len(archs))


def abstract_subnets(space: SearchSpace, n: int) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes and dtypes of `n` stacked subnets (`train_step.stacked`): the same for any
  subnets, so the max stands in for all."""
  arrays = train_step.stacked(space, [sampling.max_arch(space)] * n)
  return {k: jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype) for k, v in arrays.items()}


def abstract_args(config, model: supernet.Supernet, tx, cfg: train_step.StepConfig, mesh
                  ) -> tuple[object, dict]:
  """Shapes, dtypes and shardings of a run's train state (replicated, as the loop commits
  it) and batch: what its step programs are lowered and compiled with, without weights or
  data."""
  replicated = NamedSharding(mesh, PartitionSpec())
  variables = jax.eval_shape(lambda: supernet.init_variables(model, resolution=cfg.image_size))
  state = jax.eval_shape(lambda v: train_step.init_state(v, tx, config.seed), variables)
  state = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=replicated),
                       state)
  batch = train_step.abstract_batch(cfg, config.train.batch_size,
                                    config.train.unlabelled_batch_size, mesh)
  return state, batch


@dataclasses.dataclass(frozen=True)
class AbstractRun:
  """A run's step ingredients on abstract arguments (no weights, no data)."""

  space: SearchSpace
  cfg: train_step.StepConfig
  model: supernet.Supernet
  tx: object
  sched: object
  mesh: object
  state: object
  batch: dict
  todo: list[Program]
  remat: str

  def make_step(self):
    """A new step function: jit's in-memory caches would skip the work of a second one."""
    return train_step.make_train_step(self.model, self.tx, self.cfg, self.mesh, self.sched)


def abstract_run(config, num_classes: int) -> AbstractRun:
  """The programs `config` trains, with the model (`train.remat=auto` as `layer`), the
  optimiser and the abstract state and batch they are lowered with (the benchmarks')."""
  remat = "layer" if config.train.remat == "auto" else config.train.remat
  space = search_space.resolve(config.model)
  cfg = train_step.step_config(config, space)
  model = supernet.from_config(with_remat(config, remat), space, num_classes)
  tx, sched = optim.make(config.optim, 10, int(config.train.steps))
  mesh = mesh_lib.make_mesh()
  state, batch = abstract_args(config, model, tx, cfg, mesh)
  todo = of_schedule(schemes.from_config(config, space), space, cfg)
  return AbstractRun(space, cfg, model, tx, sched, mesh, state, batch, todo, remat)


def with_remat(config, remat: str):
  """A copy of the run's config with `train.remat` set (the Supernet takes no 'auto')."""
  c = config.copy_and_resolve_references()
  c.train.remat = remat
  return c


def model_of(config, space: SearchSpace, num_classes: int) -> supernet.Supernet:
  """The run's supernet, with `train.remat=auto` as `layer` until `compile_run` decides
  per program (`model.clone(remat=...)`): the parameters are the same under every remat,
  and evaluation runs no backward pass."""
  remat = config.train.remat
  return supernet.from_config(with_remat(config, "layer" if remat == "auto" else remat),
                              space, num_classes)


def lower(step_fn, state, batch, space: SearchSpace, program: Program,
          platform: str | None = None):
  """`program` of `step_fn` (`train_step.make_train_step`) lowered; `state` and `batch`
  may be abstract. `platform` ('cuda', 'tpu', 'cpu') lowers for hardware this process
  lacks; None: for its own backend."""
  subnets = abstract_subnets(space, program.subnets) if program.subnets else None
  return step_fn.lower(program, state, batch, subnets, platform)


def workers(programs: int) -> int:
  """Compile threads: one per program, at most half the cores (the rest stay with the
  main thread's lowering, the input pipeline and XLA's own threads)."""
  return max(1, min(programs, (os.cpu_count() or 2) // 2))


def _say(text: str) -> None:
  if jax.process_index() == 0:
    print(text, flush=True)


def _wait(results: queue.Queue):
  """The next (index, compiled, compile seconds, error), waiting in slices a signal can
  end."""
  while True:
    try:
      return results.get(timeout=_POLL_S)
    except queue.Empty:
      continue


def compile_all(step_fn, state, batch, space: SearchSpace, todo: Sequence[Program],
                numbers: dict[Program, int] | None = None, threads: int | None = None,
                say: Callable[[str], None] = _say) -> dict[Program, tuple[object, float]]:
  """{program: (compiled, GiB)} for every program in `todo`, each with its lines.

  `numbers` gives each program's k of `compiling program k/R` (default: its place in
  `todo`). On the CPU backend the first program compiles alone and
  `memory_maps.check_room` then says, before the others compile, whether they fit
  under the process's memory-map limit."""
  total = len(numbers) if numbers else len(todo)
  numbers = numbers or {p: i + 1 for i, p in enumerate(todo)}
  n_threads = threads or workers(len(todo))
  label = lambda p: f"program {numbers[p]}/{total} ({p.label()})"  # noqa: E731
  jobs: queue.Queue = queue.Queue()
  results: queue.Queue = queue.Queue()
  lowering: dict[int, float] = {}  # seconds per program; its compile's come with it

  def work() -> None:
    while (item := jobs.get()) is not None:
      i, lowered = item
      t = time.perf_counter()
      try:
        results.put((i, lowered.compile(), time.perf_counter() - t, None))
      except BaseException as e:  # noqa: BLE001 - re-raised on the main thread
        results.put((i, None, 0.0, e))

  for _ in range(n_threads):
    threading.Thread(target=work, name="tofa_jax-compile", daemon=True).start()
  out: dict[Program, tuple[object, float]] = {}
  maps = memory_maps.count() if jax.default_backend() == "cpu" else None
  try:
    for i, p in enumerate(todo):
      say(f"compiling {label(p)} ...")
      t = time.perf_counter()
      lowered = lower(step_fn, state, batch, space, p)
      lowering[i] = time.perf_counter() - t
      jobs.put((i, lowered))
      if i == 0 and maps is not None and len(todo) > 1:
        _collect(results, todo, lowering, out, label, say)
        memory_maps.check_room(memory_maps.count() - maps, len(todo) - 1,
                               f"the train program ({p.label()})")
    while len(out) < len(todo):
      _collect(results, todo, lowering, out, label, say)
  finally:
    with contextlib.suppress(queue.Empty):  # on an error or SIGTERM, nothing more starts
      while True:
        jobs.get_nowait()
    for _ in range(n_threads):
      jobs.put(None)  # each idle thread ends; a busy one ends after its compile
  return out


def _collect(results, todo, lowering, out, label, say) -> None:
  """Waits for the next compile to end and says its lowering + compile seconds (not
  its time queued behind other compiles) and GiB."""
  i, compiled, seconds, error = _wait(results)
  if error is not None:
    raise error
  gib = memory.compiled_gib(compiled)
  out[todo[i]] = (compiled, gib)
  say(f"compiled {label(todo[i])}: {lowering[i] + seconds:.1f} s, {gib:.2f} GiB")


def compile_run(remat: str, make_step: Callable[[str], object], state, batch,
                space: SearchSpace, todo: Sequence[Program],
                say: Callable[[str], None] = _say) -> tuple[dict[Program, object], dict]:
  """({program: compiled}, {program: its remat}) for a run with `train.remat=remat`;
  `make_step(remat)` builds the step of the model with that remat."""
  numbers = {p: i + 1 for i, p in enumerate(todo)}
  limit = memory.device_limit_bytes() if remat == "auto" else None
  if remat == "auto" and limit is None:
    say(f"train.remat=auto: layer (the {jax.default_backend()} backend reports no memory "
        "limit, so none is not compiled)")
    remat = "layer"
  if remat != "auto":
    got = compile_all(make_step(remat), state, batch, space, todo, numbers, say=say)
    return {p: c for p, (c, _) in got.items()}, dict.fromkeys(todo, remat)
  room = memory.HEADROOM * limit / 2**30
  got = compile_all(make_step("none"), state, batch, space, todo, numbers, say=say)
  chosen, over = {}, []
  for p in todo:
    gib = got[p][1]
    fits = gib <= room
    say(f"train.remat=auto: {'none' if fits else 'layer'} for program {numbers[p]}/"
        f"{len(todo)} ({p.label()}): none needs {gib:.3g} GiB, "
        f"{'within' if fits else 'over'} {room:.3g} GiB ({memory.HEADROOM:.0%} of the "
        f"device's {limit / 2**30:.3g} GiB)")
    chosen[p] = "none" if fits else "layer"
    if not fits:
      over.append(p)
  compiled = {p: c for p, (c, _) in got.items() if p not in over}
  if over:
    again = compile_all(make_step("layer"), state, batch, space, over, numbers, say=say)
    compiled.update({p: c for p, (c, _) in again.items()})
  return compiled, chosen

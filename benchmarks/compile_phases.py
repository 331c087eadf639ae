"""Where a train program's compile time goes: tracing, lowering, and XLA's passes.

  python benchmarks/compile_phases.py --config=configs/aircraft.py [--resolutions=192,320] \
      [--lower_only] [--passes=15] [--num_classes=C] [--config.x=y ...]
  python benchmarks/compile_phases.py ... --options=xla_backend_optimization_level=1

For each train program of the config (`programs.of_schedule`: a sandwich's teacher,
subnet programs and update, or a teacher-less scheme's step programs; `--resolutions`
keeps those at some resolutions, the update's being 0), on abstract arguments as the
trainer compiles them (`programs.abstract_args`, `train.remat=auto` as `layer`, JAX's
persistent cache off), one line:

  resolution=<px> subnets=<n> kind=<teacher|subnet|update|step> trace_s=<s> lower_s=<s>
      stablehlo_lines=<n> compile_s=<s> compile_cpu_s=<s> rss_gib=<peak>

`trace_s` is Python running the program under JAX's tracer (jaxpr; the abstract
arguments of a subnet or update program, from the teacher's outputs, are found before
the clock starts), `lower_s` the jaxpr to
StableHLO, `compile_s` XLA (HLO passes, then LLVM code generation for the CPU);
`compile_cpu_s` its CPU seconds (all
threads; steadier than wall time when other jobs share the cores). `--lower_only` stops
before XLA. `--passes=N` records the compile with JAX's profiler
and prints XLA's N longest named phases and passes (its TraceMe events, summed by
name over the compile's threads; nested events overlap their parents). `rss_gib` is
the process's peak resident memory so far. Each `--options=k=v,...` compiles the same
lowered program again with those XLA options (`Lowered.compile(compiler_options=)`),
so flags are compared on one lowering, in one process, back to back.
"""

from __future__ import annotations

import collections
import resource
import sys
import tempfile
import time

import jax
from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, ".")

from tofa_jax.train import programs  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "training config", lock_config=True)
_CLASSES = flags.DEFINE_integer("num_classes", 100, "classifier outputs")
_RESOLUTIONS = flags.DEFINE_list("resolutions", [], "only the programs at these "
                                  "resolutions (the update's: 0)")
_LOWER_ONLY = flags.DEFINE_bool("lower_only", False, "trace and lower; no XLA compile")
_PASSES = flags.DEFINE_integer("passes", 0, "print XLA's N longest phases (profiler)")
_OPTIONS = flags.DEFINE_multi_string(
    "options", [], "k=v[,k=v...]: XLA debug options for one more compile of each program, "
    "e.g. xla_backend_optimization_level=1 (repeatable)")


def _options(text: str) -> dict[str, str | bool | int]:
  out = {}
  for pair in text.split(","):
    key, value = pair.split("=", 1)
    out[key] = {"true": True, "false": False}.get(value.lower(), value)
  return out


def _cpu_s() -> float:
  """This process's CPU seconds (user + system, every thread): less swayed than wall
  time by other jobs on a shared machine."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _peak_rss_gib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def xla_phases(trace_dir: str, top: int | None) -> list[tuple[str, float, int]]:
  """(name, summed seconds, count) of the `top` longest-summed host events in a
  profile (None: all of them)."""
  import glob

  paths = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
  total: dict[str, float] = collections.defaultdict(float)
  count: dict[str, int] = collections.Counter()
  for path in paths:
    for plane in jax.profiler.ProfileData.from_file(path).planes:
      if not plane.name.startswith("/host:"):
        continue
      for line in plane.lines:
        for event in line.events:
          total[event.name] += event.duration_ns / 1e9
          count[event.name] += 1
  ranked = sorted(total, key=total.get, reverse=True)[:top]
  return [(name, total[name], count[name]) for name in ranked]


def main(argv):
  del argv
  jax.config.update("jax_enable_compilation_cache", False)
  config = _CONFIG.value
  run = programs.abstract_run(config, _CLASSES.value)
  space, model, state, batch = run.space, run.model, run.state, run.batch
  keep = {int(r) for r in _RESOLUTIONS.value}
  todo = [p for p in run.todo if not keep or p.resolution in keep]
  print(f"space={space.name} programs={len(todo)} conditional={model.conditional} "
        f"depthwise={model.depthwise_impl} remat={run.remat} dtype={config.model.dtype}",
        flush=True)
  for p in todo:
    step = run.make_step()
    subnets = programs.abstract_subnets(space, p.subnets) if p.subnets else None
    args = step.abstract_args(p, state, batch, subnets)
    t = time.perf_counter()
    traced = step.jitted(p).trace(*args)
    t_trace = time.perf_counter() - t
    t = time.perf_counter()
    lowered = traced.lower()
    t_lower = time.perf_counter() - t
    lines = lowered.as_text().count("\n")
    line = (f"resolution={p.resolution} subnets={p.subnets} kind={p.kind} trace_s={t_trace:.1f} "
            f"lower_s={t_lower:.1f} stablehlo_lines={lines}")
    if not _LOWER_ONLY.value:
      with tempfile.TemporaryDirectory() as trace_dir:
        if _PASSES.value:
          jax.profiler.start_trace(trace_dir)
        t, cpu = time.perf_counter(), _cpu_s()
        lowered.compile()
        t_compile, cpu_compile = time.perf_counter() - t, _cpu_s() - cpu
        if _PASSES.value:
          jax.profiler.stop_trace()
          phases = xla_phases(trace_dir, _PASSES.value)
      line += f" compile_s={t_compile:.1f} compile_cpu_s={cpu_compile:.1f}"
    print(f"{line} rss_gib={_peak_rss_gib():.2f}", flush=True)
    if _PASSES.value and not _LOWER_ONLY.value:
      for name, seconds, n in phases:
        print(f"  xla {seconds:8.2f} s  x{n:<5d} {name}", flush=True)
    for text in [] if _LOWER_ONLY.value else _OPTIONS.value:
      t, cpu = time.perf_counter(), _cpu_s()
      lowered.compile(compiler_options=_options(text))
      print(f"  with {text}: compile_s={time.perf_counter() - t:.1f} "
            f"compile_cpu_s={_cpu_s() - cpu:.1f} "
            f"rss_gib={_peak_rss_gib():.2f}", flush=True)


if __name__ == "__main__":
  app.run(main)

"""Supernet speed: compile time, per-subnet forward+backward, sandwich step.

The sandwich step is the one `benchmarks/peer_step.py` times for the PyTorch OFA
supernet: max subnet with cross-entropy, then the min and two random subnets
distilled from the max subnet's soft predictions, one SGD-momentum update, all in
one jitted program (`sandwich_program`, which peer_step.py also runs).

  python benchmarks/supernet_step.py --space=ofa_mbv3 --batch=32 --resolution=64
  python benchmarks/supernet_step.py --space=tofa ... --xla_options=k=v[,k=v...]

`--xla_options` times only the fwd+bwd program: lowered once, compiled with XLA's
defaults and with those options (`Lowered.compile(compiler_options=)`), then each
subnet's call alternating between the two, so both run under the same load. It prints
each compile's CPU seconds and each subnet's median ms per call, wall and CPU (the
process's, every thread), for both: what a compile-time option costs at run time.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tofa_jax.model import supernet
from tofa_jax.space import arch as arch_lib
from tofa_jax.space import sampling, search_space


def _time(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / repeats


def add_flags(parser: argparse.ArgumentParser) -> None:
  """The flags that pick the supernet and the input (shared with peer_step.py)."""
  parser.add_argument("--space", default="ofa_mbv3")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--resolution", type=int, default=64)
  parser.add_argument("--classes", type=int, default=100)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--depthwise_impl", default="auto", choices=("auto", "shift", "lax"))
  parser.add_argument("--remat", default="layer", choices=supernet.REMAT)
  parser.add_argument("--dtype", default="float32", choices=tuple(supernet.DTYPES))
  parser.add_argument("--masked", action="store_true",
                      help="pure masking (no lax.cond/switch): every subnet costs the max")


def sandwich_archs(space) -> list[arch_lib.Arch]:
  """The sandwich's subnets: max, min, and two random ones (fixed seeds, so the peer
  runs the very same subnets)."""
  return [sampling.max_arch(space), sampling.min_arch(space)] + [
      sampling.random_arch(space, sampling.rng_for(0, 2, salt)) for salt in range(2)]


class Bench:
  """The supernet, its variables, one batch, and the jitted programs timed here."""

  def __init__(self, args: argparse.Namespace):
    self.space = space = search_space.get_space(args.space)
    model = supernet.build(space, args.classes, depthwise_impl=args.depthwise_impl,
                           conditional=not args.masked, remat=args.remat,
                           dtype=supernet.DTYPES[args.dtype])
    variables = supernet.init_variables(model, 0, args.resolution)
    self.params, self.stats = variables["params"], variables["batch_stats"]
    rng = np.random.default_rng(0)
    self.images = jnp.asarray(
        rng.normal(size=(args.batch, args.resolution, args.resolution, 3)), jnp.float32)
    self.labels = jnp.asarray(rng.integers(0, args.classes, args.batch))
    images, labels, res = self.images, self.labels, args.resolution

    def apply(p, s, arch, train=True):
      return model.apply({"params": p, "batch_stats": s}, images, arch, train=train,
                         resolution=res, mutable=["batch_stats"])

    @jax.jit
    def fwd_bwd(p, s, arch):
      def loss(p):
        logits, new = apply(p, s, arch)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), new
      return jax.grad(loss, has_aux=True)(p)

    tx = optax.sgd(0.01, momentum=0.9)
    self.opt_state = tx.init(self.params)

    @jax.jit
    def sandwich(p, s, o, stacked):
      def max_loss(p):
        logits, new = apply(p, s, jax.tree.map(lambda a: a[0], stacked))
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return ce, (logits, new["batch_stats"])
      grads, (logits, new_s) = jax.grad(max_loss, has_aux=True)(p)
      soft = jax.lax.stop_gradient(jax.nn.softmax(logits))

      def body(g_acc, arch):
        def kd(p):
          out, _ = apply(p, s, arch)
          return optax.softmax_cross_entropy(out, soft).mean()
        return jax.tree.map(jnp.add, g_acc, jax.grad(kd)(p)), None

      grads, _ = jax.lax.scan(body, grads, jax.tree.map(lambda a: a[1:], stacked))
      updates, o = tx.update(grads, o, p)
      return optax.apply_updates(p, updates), new_s, o

    self.fwd_bwd, self.sandwich = fwd_bwd, sandwich
    self.stacked = jax.tree.map(jnp.asarray, arch_lib.stack_arrays(
        [arch_lib.to_arrays(space, a) for a in sandwich_archs(space)]))

  def arrays(self, a: arch_lib.Arch):
    return jax.tree.map(jnp.asarray, arch_lib.to_arrays(self.space, a))

  def sandwich_step(self) -> Callable[[], None]:
    """One sandwich step (compiled on first call), blocking until it is done. The
    state is not carried over, so every call does the same work."""
    args = (self.params, self.stats, self.opt_state, self.stacked)
    return lambda: jax.block_until_ready(self.sandwich(*args))


def _cpu_s() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def compare_options(bench: Bench, archs: dict, text: str, rounds: int) -> None:
  """The fwd+bwd program with XLA's defaults and with `text`'s options, one lowering,
  calls alternating (see the module docstring)."""
  options = {}
  for pair in text.split(","):
    key, value = pair.split("=", 1)
    options[key] = {"true": True, "false": False}.get(value.lower(), value)
  lowered = bench.fwd_bwd.lower(bench.params, bench.stats, bench.arrays(archs["max"]))
  programs = {}
  for name, opts in (("defaults", {}), (text, options)):
    t, cpu = time.perf_counter(), _cpu_s()
    programs[name] = lowered.compile(compiler_options=opts)
    print(f"compile fwd+bwd, {name}: {time.perf_counter() - t:.1f} s, "
          f"{_cpu_s() - cpu:.1f} CPU s", flush=True)
  for sub, a in archs.items():
    arrays = bench.arrays(a)
    wall = {n: [] for n in programs}
    cpu = {n: [] for n in programs}
    for program in programs.values():  # warm-up
      jax.block_until_ready(program(bench.params, bench.stats, arrays))
    for _ in range(rounds):
      for name, program in programs.items():
        t, c = time.perf_counter(), _cpu_s()
        jax.block_until_ready(program(bench.params, bench.stats, arrays))
        wall[name].append(time.perf_counter() - t)
        cpu[name].append(_cpu_s() - c)
    for name in programs:
      print(f"fwd+bwd {sub:>6}, {name}: {statistics.median(wall[name]) * 1e3:8.1f} ms, "
            f"{statistics.median(cpu[name]) * 1e3:8.1f} CPU ms (median of {rounds})",
            flush=True)


def main() -> None:
  parser = argparse.ArgumentParser()
  add_flags(parser)
  parser.add_argument("--xla_options", default="",
                      help="k=v[,k=v...]: time fwd+bwd with and without these XLA options")
  args = parser.parse_args()
  bench = Bench(args)
  space, res = bench.space, args.resolution
  params, stats, fwd_bwd = bench.params, bench.stats, bench.fwd_bwd
  archs = {"max": sampling.max_arch(space), "min": sampling.min_arch(space),
           "random": sampling.random_arch(space, sampling.rng_for(0, 1))}
  if args.xla_options:
    compare_options(bench, archs, args.xla_options, args.repeats)
    return

  mode = "masked" if args.masked else "conditional"
  print(f"space={args.space} batch={args.batch} res={res} mode={mode} "
        f"depthwise={args.depthwise_impl} remat={args.remat} dtype={args.dtype} "
        f"backend={jax.default_backend()} "
        f"devices={jax.device_count()}")
  t0 = time.perf_counter()
  jax.block_until_ready(fwd_bwd(params, stats, bench.arrays(archs["max"])))
  print(f"compile fwd+bwd: {time.perf_counter() - t0:.1f} s")
  times = {}
  for name, a in archs.items():
    times[name] = _time(fwd_bwd, params, stats, bench.arrays(a), repeats=args.repeats)
    print(f"fwd+bwd {name:>6}: {times[name] * 1e3:8.1f} ms")
  print(f"min/max fwd+bwd ratio: {times['min'] / times['max']:.2f}")

  step = bench.sandwich_step()
  t0 = time.perf_counter()
  step()
  print(f"compile sandwich: {time.perf_counter() - t0:.1f} s")
  t0 = time.perf_counter()
  for _ in range(args.repeats):
    step()
  dt = (time.perf_counter() - t0) / args.repeats
  print(f"sandwich step (max+min+2 random): {dt * 1e3:.0f} ms/step, "
        f"{args.batch / dt:.1f} labelled img/s")


if __name__ == "__main__":
  main()

"""Where the sandwich step's time goes, op by op: ours from XLA's per-op trace, the
PyTorch peer's from `torch.profiler`, on the same subnets and batch.

  python benchmarks/step_profile.py --batch=32 --resolution=128 [--top=25] [--peer]

Ours: `supernet_step.py`'s sandwich program (max subnet with cross-entropy, the min
and two random subnets distilled from it, one SGD-momentum update) compiled with
`xla_cpu_enable_xprof_traceme` (XLA CPU wraps each HLO op in a trace event), one
untraced call timed, then one call under `jax.profiler`. Each op's event seconds are
summed twice: by the kind of HLO op (its name without the number: `ynn_fusion`,
`copy_bitcast_fusion`, `dot`, ...) and by (kind, the last three parts of its JAX
`op_name`), which says which line of the model made it. A `cond`, `while` or
`call` event contains the events of its body, so those rows overlap the others.
`--peer` adds the PyTorch OFA supernet's step (`peer_step.py`) under
`torch.profiler`, its ops by self CPU time: the same table for the other side.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import tempfile
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compile_phases  # noqa: E402
import supernet_step  # noqa: E402


def op_names(hlo_text: str) -> dict[str, str]:
  """{HLO instruction name: its JAX op_name} from a compiled module's text."""
  names = {}
  for m in re.finditer(r'^\s*(?:ROOT )?%([\w.\-]+) = [^\n]*?op_name="([^"]*)"', hlo_text,
                       re.M):
    names[m.group(1)] = m.group(2)
  return names


def kind(name: str) -> str:
  return re.sub(r"\.\d+(\.clone)?$", "", name)


def xla_op_seconds(trace_dir: str, names: dict[str, str]
                   ) -> tuple[collections.Counter, collections.Counter]:
  """(seconds by op kind, seconds by (kind, op_name tail)) of the HLO op events in
  the profile under `trace_dir` (events named after an instruction of `names`)."""
  by_kind, by_source = collections.Counter(), collections.Counter()
  for name, seconds, _ in compile_phases.xla_phases(trace_dir, top=None):
    if name in names:
      by_kind[kind(name)] += seconds
      by_source[(kind(name), "/".join(names[name].split("/")[-3:]))] += seconds
  return by_kind, by_source


def profile_ours(bench: supernet_step.Bench, top: int) -> None:
  args = (bench.params, bench.stats, bench.opt_state, bench.stacked)
  compiled = bench.sandwich.lower(*args).compile(
      compiler_options={"xla_cpu_enable_xprof_traceme": True})
  jax.block_until_ready(compiled(*args))
  t = time.perf_counter()
  jax.block_until_ready(compiled(*args))
  print(f"tofa_jax sandwich step: {(time.perf_counter() - t) * 1e3:.0f} ms (one call, "
        "untraced)")
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir)
    jax.block_until_ready(compiled(*args))
    jax.profiler.stop_trace()
    by_kind, by_source = xla_op_seconds(trace_dir, op_names(compiled.as_text()))
  print(f"tofa_jax, by HLO op kind (sum {sum(by_kind.values()) * 1e3:.0f} ms, with "
        "cond/while bodies counted twice):")
  for k, s in by_kind.most_common(top):
    print(f"  {s * 1e3:8.1f} ms  {k}")
  print("tofa_jax, by HLO op kind and JAX op_name:")
  for (k, src), s in by_source.most_common(top):
    print(f"  {s * 1e3:8.1f} ms  {k:<32} {src}")


def profile_peer(bench: supernet_step.Bench, args: argparse.Namespace, top: int) -> None:
  import peer_step
  import torch

  step = peer_step.peer_step(bench.space, args)
  step()  # warm-up: allocator and oneDNN primitive caches
  t = time.perf_counter()
  step()
  print(f"peer sandwich step: {(time.perf_counter() - t) * 1e3:.0f} ms (one call, "
        "unprofiled)")
  with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    step()
  print("peer, by op (self CPU time over its threads):")
  print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  supernet_step.add_flags(parser)
  parser.add_argument("--top", type=int, default=25, help="rows per table")
  parser.add_argument("--peer", action="store_true", help="also profile the OFA peer")
  parser.add_argument("--threads", type=int, default=os.cpu_count(),
                      help="torch's CPU threads (XLA uses every core)")
  args = parser.parse_args()
  bench = supernet_step.Bench(args)
  print(f"space={args.space} batch={args.batch} res={args.resolution} "
        f"mode={'masked' if args.masked else 'conditional'} remat={args.remat} "
        f"dtype={args.dtype} depthwise={args.depthwise_impl}", flush=True)
  profile_ours(bench, args.top)
  if args.peer:
    profile_peer(bench, args, args.top)


if __name__ == "__main__":
  main()

"""tofa_jax's sandwich step against the PyTorch Once-for-All supernet's, one machine state.

  pip install -e '.[bench]'    # torch (CPU) and ofa (installed with --no-deps is enough)
  python benchmarks/peer_step.py --batch=32 --resolution=128 [--rounds=5] [--repeats=2]

Both sides run the same sandwich on the same subnets: the max subnet with
cross-entropy on the labels, then the min subnet and two random ones
(`supernet_step.sandwich_archs`, given to OFA's `set_active_subnet`) distilled from
the max subnet's softmax, forward and backward one subnet at a time, then one
SGD-momentum update (lr 0.01, momentum 0.9). Space `ofa_mbv3`, which is OFA's
OFAMobileNetV3 (width 1.0, kernels 3/5/7, expansions 3/4/6, depths 2/3/4).

This machine is shared and its speed drifts by tens of percent within minutes, so
the two are timed in alternation in one process: each round times `--repeats` steps
of ours, then as many of the peer's, and gives one ratio. Printed: every round (wall
and CPU milliseconds per step), and the median of the rounds' wall-time ratios. On
an oversubscribed machine torch's OpenMP threads wait on preempted siblings and its
wall time balloons far more than XLA's: compare figures taken with the cores free.
Both sides use `--threads` CPU threads (torch's intra-op pool; XLA's CPU client uses
every core, which is the same number on the 2-core machines this was written for).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import supernet_step  # noqa: E402


def ofa_setting(space, arch) -> dict[str, list[int]]:
  """An Arch of `ofa_mbv3` as OFA's `set_active_subnet(ks=, e=, d=)`: per-block lists
  over every stage's max depth (blocks past the active depth are skipped by OFA, so
  their entries are placeholders), the fixed first stage left out."""
  ks, es = [], []
  for s in range(1, space.n_stages):
    pad = space.stages[s].max_depth - arch.depth[s]
    ks += list(arch.kernel[s]) + [3] * pad
    es += [int(e) for e in arch.expand[s]] + [3] * pad
  return {"ks": ks, "e": es, "d": list(arch.depth[1:])}


def peer_step(space, args: argparse.Namespace) -> Callable[[], None]:
  """OFA's sandwich step on the same subnets, batch shape and class count."""
  try:
    import torch
    import torch.nn.functional as F
    # The tests' loader: `ofa` imports torchvision only for its data code, stubbed there.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from helpers.torch_reference import load_ofa
    OFAMobileNetV3 = load_ofa()
  except ImportError as e:
    raise SystemExit(f"peer_step.py needs torch and ofa ({e}); install them with "
                     "pip install -e '.[bench]'") from e

  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  net = OFAMobileNetV3(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4],
                       n_classes=args.classes)
  net.train()
  opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
  x = torch.randn(args.batch, 3, args.resolution, args.resolution)
  y = torch.randint(0, args.classes, (args.batch,))
  max_arch, *students = [ofa_setting(space, a) for a in supernet_step.sandwich_archs(space)]

  def step() -> None:
    opt.zero_grad()
    net.set_active_subnet(**max_arch)
    logits = net(x)
    F.cross_entropy(logits, y).backward()
    soft = logits.detach().softmax(-1)
    for setting in students:
      net.set_active_subnet(**setting)
      out = net(x)
      (-(soft * out.log_softmax(-1)).sum(-1)).mean().backward()
    opt.step()

  return step


def _cpu_s() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _seconds_per_step(step: Callable[[], None], repeats: int) -> tuple[float, float]:
  """(wall, CPU) seconds per step; CPU time counts every thread of the process."""
  start, cpu = time.perf_counter(), _cpu_s()
  for _ in range(repeats):
    step()
  return (time.perf_counter() - start) / repeats, (_cpu_s() - cpu) / repeats


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  supernet_step.add_flags(parser)
  parser.add_argument("--rounds", type=int, default=5, help="alternations of ours and peer")
  parser.add_argument("--threads", type=int, default=os.cpu_count(),
                      help="torch's CPU threads (XLA uses every core)")
  parser.set_defaults(repeats=2)
  args = parser.parse_args()
  if args.space != "ofa_mbv3":
    raise SystemExit(f"--space={args.space!r}: the peer is OFA's MobileNetV3 supernet; "
                     "only --space=ofa_mbv3 has a peer")

  bench = supernet_step.Bench(args)
  ours = bench.sandwich_step()
  peer = peer_step(bench.space, args)
  print(f"space={args.space} batch={args.batch} res={args.resolution} "
        f"classes={args.classes} mode={'masked' if args.masked else 'conditional'} "
        f"remat={args.remat} dtype={args.dtype} depthwise={args.depthwise_impl} "
        f"threads={args.threads}", flush=True)
  t0 = time.perf_counter()
  ours()
  print(f"tofa_jax compile + first step: {time.perf_counter() - t0:.1f} s", flush=True)
  peer()  # warm-up: allocator and oneDNN primitive caches
  ratios = []
  for r in range(args.rounds):
    (t_ours, c_ours), (t_peer, c_peer) = (_seconds_per_step(ours, args.repeats),
                                          _seconds_per_step(peer, args.repeats))
    ratios.append(t_peer / t_ours)
    print(f"round {r}: tofa_jax {t_ours * 1e3:.0f} ms/step ({c_ours * 1e3:.0f} CPU ms), "
          f"peer {t_peer * 1e3:.0f} ms/step ({c_peer * 1e3:.0f} CPU ms), "
          f"speed ratio (peer time / ours) {ratios[-1]:.2f}x", flush=True)
  print(f"median speed ratio over {args.rounds} rounds: {statistics.median(ratios):.2f}x "
        "(above 1: tofa_jax is faster)")


if __name__ == "__main__":
  main()

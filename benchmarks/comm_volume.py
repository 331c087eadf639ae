"""Bytes all-reduced per train step, read from the compiled data-parallel program.

  python benchmarks/comm_volume.py --config=configs/cifar100.py \
      --config.model.resolutions='(64,)' --config.data.image_size=64 [--devices=8]

Compiles the XLA programs one TOFA train step runs (`programs.of_archs` of the
step's subnets: the sandwich's teacher, one subnet program per distilled subnet and
the update; a teacher-less step's one program) over `--devices` fake CPU devices (set
before JAX starts), each distinct program once, then sums the result sizes of every
all-reduce in each partitioned HLO, each times the runs per call of the computation
holding it (loop trip counts), and each program's sum times its calls per step (a
subnet program once per subnet at its resolution): the per-step payload each device
contributes (a ring all-reduce moves about 2 (n-1)/n times that per device). One line
per program, then its computations with the most payload; the last line is the step's
payload over the parameter bytes. The payload does not depend on the image
resolution, so a small one keeps the compile short. Also prints the parameter
and BN-statistic sizes for comparison.
"""

from __future__ import annotations

import os
import re
import sys
import time

_DEVICES = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--devices=")), "8")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           f" --xla_force_host_platform_device_count={_DEVICES}")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

sys.path.insert(0, ".")

from tofa_jax.model import supernet  # noqa: E402
from tofa_jax.runtime import mesh as mesh_lib  # noqa: E402
from tofa_jax.space import search_space  # noqa: E402
from tofa_jax.train import optim, programs  # noqa: E402
from tofa_jax.train import step as train_step  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "training config", lock_config=True)
flags.DEFINE_integer("devices", 8, "fake CPU devices (read before JAX starts)")

_BYTES = {"f32": 4, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "f64": 8, "s64": 8, "pred": 1,
          "u8": 1, "s8": 1}
_SHAPE = re.compile(r"\b(f32|bf16|f16|s32|u32|f64|s64|pred|u8|s8)\[([0-9,]*)\]")


_CALL = re.compile(r"(body|condition|to_apply|calls|branch_computations|true_computation|"
                   r"false_computation)=(\{[^}]*\}|%?[\w.\-]+)")
_TRIP = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')


def _computations(hlo: str) -> dict[str, list[str]]:
  comps, name = {}, None
  for line in hlo.splitlines():
    head = re.match(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$", line)
    if head and not line.startswith(" "):
      name = ("ENTRY " if line.startswith("ENTRY") else "") + head.group(1)
      comps[name] = []
    elif name is not None:
      comps[name].append(line)
  return comps


def all_reduce_bytes(hlo: str) -> dict[str, tuple[int, int, int]]:
  """{computation: (bytes per run, all-reduce ops, runs per step)} over the HLO's
  all-reduce results. A computation's runs per step multiply through the loops
  that call it (a while body runs its known trip count per run of its caller)."""
  comps = _computations(hlo)
  calls: dict[str, list[tuple[str, int]]] = {}
  for caller, lines in comps.items():
    for line in lines:
      trip = _TRIP.search(line)
      for kind, names in _CALL.findall(line):
        for callee in names.strip("{}").replace("%", "").split(","):
          n = int(trip.group(1)) if (trip and kind == "body") else 1
          calls.setdefault(callee.strip(), []).append((caller, n))

  def runs(name, seen=()):
    if name.startswith("ENTRY") or name in seen:
      return 1
    return sum(runs(c, (*seen, name)) * n for c, n in calls.get(name, [])) or 1

  out = {}
  for name, lines in comps.items():
    for line in lines:
      m = re.search(r"=\s*(.*?)\s+all-reduce(-start)?\(", line)
      if not m:
        continue
      size = sum(_BYTES[dtype] * int(np.prod([int(d) for d in dims.split(",") if d] or [1]))
                 for dtype, dims in _SHAPE.findall(m.group(1)))
      b, n, _ = out.get(name, (0, 0, 0))
      out[name] = (b + size, n + 1, runs(name))
  return out


def main(argv):
  del argv
  config = _CONFIG.value
  space = search_space.resolve(config.model)
  res = train_step.image_size(config, space)
  cfg = train_step.StepConfig(variant=config.loss.variant, scheme=config.train.sampling,
                              num_random=config.train.num_random, image_size=res)
  model = programs.model_of(config, space, 100)
  variables = supernet.init_variables(model, seed=0, resolution=res)
  tx, sched = optim.make(config.optim, 10, 1000)
  mesh = mesh_lib.make_mesh()
  step = train_step.make_train_step(model, tx, cfg, mesh, sched)
  state = train_step.init_state(variables, tx, 0)
  bl, bu = config.train.batch_size, config.train.unlabelled_batch_size
  img = lambda n: np.zeros((n, res, res, 3), np.float32)  # noqa: E731
  batch = {"images": img(bl), "labels": np.zeros(bl, np.int32)}
  if cfg.uses_unlabelled:
    batch["unlabelled_weak"], batch["unlabelled_strong"] = img(bu), img(bu)
  archs = train_step.step_archs(space, cfg, 0, 0, 0)
  subnets = train_step.stacked(space, archs)
  calls = programs.of_archs(archs, cfg, space)  # in order; a subnet program per subnet
  t = time.perf_counter()
  per_program = {}
  for p in dict.fromkeys(calls):
    compiled = step.lower(p, state, batch, subnets if p.subnets else None).compile()
    per_program[p] = all_reduce_bytes(compiled.as_text())
  print(f"space {space.name}, {jax.device_count()} devices, {len(per_program)} programs, "
        f"compile {time.perf_counter() - t:.1f} s")
  total = count = 0
  for p, per in per_program.items():
    k = calls.count(p)
    b_p = sum(b * r for b, _, r in per.values())
    n_p = sum(n * r for _, n, r in per.values())
    total, count = total + k * b_p, count + k * n_p
    print(f"program ({p.label()}) x {k} per step: {n_p} all-reduce ops, "
          f"{b_p / 2**20:.2f} MiB per call")
    for name, (b, n, r) in sorted(per.items(), key=lambda kv: -kv[1][0] * kv[1][2])[:8]:
      print(f"  {name}: {n} all-reduce ops x {r} runs, {b * r / 2**20:.2f} MiB")
  n_params = sum(x.size for x in jax.tree.leaves(variables["params"]))
  n_stats = sum(x.size for x in jax.tree.leaves(variables["batch_stats"]))
  param_bytes = sum(x.nbytes for x in jax.tree.leaves(variables["params"]))
  print(f"all-reduce ops per step: {count}; payload per step: {total / 2**20:.2f} MiB "
        f"({total} bytes)")
  print(f"parameters: {n_params} ({param_bytes / 2**20:.2f} MiB); BN statistics: "
        f"{n_stats} ({4 * n_stats / 2**20:.2f} MiB f32)")
  print(f"allreduce_over_param_bytes={total / param_bytes:.3f}")

if __name__ == "__main__":
  app.run(main)

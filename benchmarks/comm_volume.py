"""Bytes all-reduced per train step, read from the compiled data-parallel program.

  python benchmarks/comm_volume.py --config=configs/cifar100.py \
      --config.model.resolutions='(64,)' --config.data.image_size=64 [--devices=8]

Compiles the TOFA train step over `--devices` fake CPU devices (set before JAX
starts), then sums the result sizes of every all-reduce in the partitioned HLO:
the per-step payload each device contributes (a ring all-reduce moves about
2 (n-1)/n times that per device). The payload does not depend on the image
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
from tofa_jax.train import optim  # noqa: E402
from tofa_jax.train import step as train_step  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "training config", lock_config=True)
flags.DEFINE_integer("devices", 8, "fake CPU devices (read before JAX starts)")

_BYTES = {"f32": 4, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "f64": 8, "s64": 8, "pred": 1,
          "u8": 1, "s8": 1}
_SHAPE = re.compile(r"\b(f32|bf16|f16|s32|u32|f64|s64|pred|u8|s8)\[([0-9,]*)\]")


def all_reduce_bytes(hlo: str) -> dict[str, tuple[int, int]]:
  """{computation: (bytes, all-reduce ops)} over the HLO's all-reduce results.

  Ops inside a loop body (e.g. the scan over distilled subnets) run once per
  iteration but are listed once here.
  """
  out: dict[str, tuple[int, int]] = {}
  computation = "?"
  for line in hlo.splitlines():
    head = re.match(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$", line)
    if head and not line.startswith(" "):
      computation = ("ENTRY " if line.startswith("ENTRY") else "") + head.group(1)
      continue
    m = re.search(r"=\s*(.*?)\s+all-reduce(-start)?\(", line)
    if not m:
      continue
    size = sum(_BYTES[dtype] * int(np.prod([int(d) for d in dims.split(",") if d] or [1]))
               for dtype, dims in _SHAPE.findall(m.group(1)))
    b, n = out.get(computation, (0, 0))
    out[computation] = (b + size, n + 1)
  return out


def main(argv):
  del argv
  config = _CONFIG.value
  space = search_space.resolve(config.model)
  res = config.data.image_size
  cfg = train_step.StepConfig(variant=config.loss.variant, scheme=config.train.sampling,
                              num_random=config.train.num_random, resolution=res)
  model = supernet.build(space, 100)
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
  subnets = train_step.stacked(space, train_step.step_archs(space, cfg, 0, 0, 0))
  t = time.perf_counter()
  compiled = step.lower(state, batch, subnets).compile()
  print(f"space {space.name}, {jax.device_count()} devices, "
        f"compile {time.perf_counter() - t:.1f} s")
  per = all_reduce_bytes(compiled.as_text())
  total, count = sum(b for b, _ in per.values()), sum(n for _, n in per.values())
  for name, (b, n) in sorted(per.items(), key=lambda kv: -kv[1][0])[:8]:
    print(f"  {name}: {n} all-reduce ops, {b / 2**20:.2f} MiB")
  n_params = sum(x.size for x in jax.tree.leaves(variables["params"]))
  n_stats = sum(x.size for x in jax.tree.leaves(variables["batch_stats"]))
  print(f"all-reduce ops: {count}; payload per step: {total / 2**20:.2f} MiB ({total} bytes)")
  print(f"parameters: {n_params} ({4 * n_params / 2**20:.2f} MiB f32); BN statistics: "
        f"{n_stats} ({4 * n_stats / 2**20:.2f} MiB f32)")


if __name__ == "__main__":
  app.run(main)

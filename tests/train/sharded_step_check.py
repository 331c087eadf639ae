"""Runs two TOFA steps on 8 fake CPU devices and on 1, and writes the differences.

Run as a script with XLA_FLAGS=--xla_force_host_platform_device_count=8 (set
before jax is imported): `python tests/sharded_step_check.py OUT.json`.
"""

import json
import sys

import jax
import numpy as np

from tofa_jax.model import supernet
from tofa_jax.runtime import mesh as mesh_lib
from tofa_jax.space.search_space import get_space
from tofa_jax.train import optim
from tofa_jax.train import step as train_step

STEPS = (4, 6)


def run(devices, variables, batches, space, model, cfg):
  tx, sched = optim.make({"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4,
                          "warmup_epochs": 0}, steps_per_epoch=1, total_steps=10)
  mesh = mesh_lib.make_mesh(devices)
  step = train_step.make_train_step(model, tx, cfg, mesh, sched)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = jax.device_put(train_step.init_state(variables, tx, seed=0), replicated)
  # Steps 4 and 6 draw their random subnets at 32 px, the min subnet's resolution: the
  # step runs min and random subnets through one scanned body, one program body fewer
  # to compile than at a 40 px draw (steps 0-3).
  for i, batch in zip(STEPS, batches, strict=True):
    archs = train_step.step_archs(space, cfg, seed=0, step=i, epoch=0)
    assert train_step.step_resolution(archs) == min(space.resolutions), i
    state, metrics = step(state, batch, train_step.stacked(space, archs),
                          train_step.step_resolution(archs))
  return jax.device_get(state), float(metrics["loss"])


def main(out_path):
  space = get_space("tiny")
  model = supernet.build(space, num_classes=5, dropout_rate=0.2, drop_connect_rate=0.2,
                         remat="layer")
  variables = jax.tree.map(np.asarray, supernet.init_variables(model, seed=1))
  cfg = train_step.StepConfig(variant="tofa", image_size=40, threshold=0.2)
  rng = np.random.default_rng(0)
  batches = [{"images": rng.standard_normal((8, 40, 40, 3)).astype(np.float32),
              "labels": rng.integers(0, 5, 8).astype(np.int32),
              "unlabelled_weak": rng.standard_normal((8, 40, 40, 3)).astype(np.float32),
              "unlabelled_strong": rng.standard_normal((8, 40, 40, 3)).astype(np.float32)}
             for _ in range(2)]
  devices = jax.devices()
  s8, loss8 = run(devices, variables, batches, space, model, cfg)
  s1, loss1 = run(devices[:1], variables, batches, space, model, cfg)
  diff = lambda a, b: max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))  # noqa: E731
                          for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
  result = {"devices": [len(devices), 1], "loss": loss1, "loss_diff": abs(loss8 - loss1),
            "params_diff": diff(s8.params, s1.params),
            "stats_diff": diff(s8.batch_stats, s1.batch_stats),
            "params_moved": diff(s1.params, variables["params"])}
  with open(out_path, "w") as f:
    json.dump(result, f)
  print(result)


if __name__ == "__main__":
  main(sys.argv[1])

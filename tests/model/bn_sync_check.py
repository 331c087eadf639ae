"""One train step with model.bn_sync='device' on 8 fake CPU devices, against the
mean over devices of BN statistics computed on each device's shard alone: a
teacher-less step (one program) and a sandwich step (its teacher's statistics pass
per device to the update program, which averages them).

Run as a script with XLA_FLAGS=--xla_force_host_platform_device_count=8 (set
before jax is imported): `python tests/model/bn_sync_check.py OUT.json`.
"""

import json
import sys

import jax
import numpy as np

from tofa_jax.model import supernet
from tofa_jax.runtime import mesh as mesh_lib
from tofa_jax.space import arch as A
from tofa_jax.space import sampling
from tofa_jax.space.search_space import get_space
from tofa_jax.train import optim
from tofa_jax.train import step as train_step


def main(out_path):
  space = get_space("tiny")
  model = supernet.build(space, num_classes=5, bn_sync="device")
  variables = jax.tree.map(np.asarray, supernet.init_variables(model, seed=1))
  # One subnet (the max) per step, no teacher: the step's statistics are that pass's.
  cfg = train_step.StepConfig(variant="lab", scheme="single_max", image_size=40)
  rng = np.random.default_rng(0)
  # Shards of different means and spreads, so per-device statistics differ from
  # the global batch's.
  images = (rng.standard_normal((16, 40, 40, 3)) *
            np.repeat(np.linspace(0.5, 2.0, 8), 2)[:, None, None, None] +
            np.repeat(np.linspace(-1.0, 1.0, 8), 2)[:, None, None, None]).astype(np.float32)
  batch = {"images": images, "labels": rng.integers(0, 5, 16).astype(np.int32)}
  tx, _ = optim.make({"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "warmup_epochs": 0},
                     steps_per_epoch=1, total_steps=10)
  mesh = mesh_lib.make_mesh(jax.devices())
  step = train_step.make_train_step(model, tx, cfg, mesh)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = jax.device_put(train_step.init_state(variables, tx, seed=0), replicated)
  archs = train_step.step_archs(space, cfg, seed=0, step=0, epoch=0)
  assert archs == [sampling.max_arch(space)]
  state, _ = step(state, batch, train_step.stacked(space, archs),
                  train_step.step_resolution(archs))
  # The sandwich (labelled images only, the min subnet alone): the running statistics
  # are the max subnet's pass's, as above.
  sandwich = train_step.StepConfig(variant="lab", num_random=0, image_size=40)
  sw_state = jax.device_put(train_step.init_state(variables, tx, seed=0), replicated)
  sw_archs = train_step.step_archs(space, sandwich, seed=0, step=0, epoch=0)
  sw_state, _ = train_step.make_train_step(model, tx, sandwich, mesh)(
      sw_state, batch, train_step.stacked(space, sw_archs), train_step.step_resolution(sw_archs))
  # Every device holds the same statistics (the step's output is replicated).
  copies = [[np.asarray(s.data) for s in leaf.addressable_shards]
            for leaf in jax.tree.leaves(state.batch_stats)]
  spread = max(float(np.max(np.abs(c - cs[0]))) for cs in copies for c in cs)

  arrays = A.to_arrays(space, archs[0])
  stats = jax.jit(lambda x: model.apply(variables, x, arrays, train=True, resolution=40,
                                        mutable=["batch_stats"])[1]["batch_stats"])
  shards = [stats(images[2 * d:2 * d + 2]) for d in range(8)]
  want = jax.tree.map(lambda *s: np.mean(np.stack(s), 0), *shards)
  whole = jax.jit(lambda x: model.apply(variables, x, arrays, train=True, resolution=40,
                                        mutable=["batch_stats"])[1]["batch_stats"])(images)
  diff = lambda a, b: max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))  # noqa: E731
                          for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
  result = {"devices": len(jax.devices()), "stats_diff": diff(state.batch_stats, want),
            "sandwich_stats_diff": diff(sw_state.batch_stats, want),
            "global_diff": diff(want, whole), "device_spread": spread}
  with open(out_path, "w") as f:
    json.dump(result, f)
  print(result)


if __name__ == "__main__":
  main(sys.argv[1])

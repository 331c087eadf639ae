"""Device memory of a config's train programs, from XLA's memory analysis, without data.

  python benchmarks/step_memory.py --config=configs/aircraft.py [--config.x=y ...] [--run]

Compiles every train program of the config on abstract inputs: one train step per
training resolution, the resolution its random subnets run at (the max subnet always
runs at the largest, the min at the smallest). One line per program:

  program=<name> resolution=<px> compiled_gib=<temp+arguments+outputs-aliased> compile_s=<s>

With --run it also executes two steps of the last program on random data and prints
`peak_rss_gib=<x> step_s=<y>` (the second step's wall time). No dataset is read: the
class count comes from --num_classes (aircraft's 100 by default).
"""

from __future__ import annotations

import sys
import time

import jax
import numpy as np
from absl import app, flags
from jax.sharding import NamedSharding, PartitionSpec
from ml_collections import config_flags

sys.path.insert(0, ".")

from tofa_jax.model import supernet  # noqa: E402
from tofa_jax.runtime import memory  # noqa: E402
from tofa_jax.runtime import mesh as mesh_lib  # noqa: E402
from tofa_jax.space import search_space  # noqa: E402
from tofa_jax.train import optim, programs  # noqa: E402
from tofa_jax.train import step as train_step  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "training config", lock_config=True)
_CLASSES = flags.DEFINE_integer("num_classes", 100, "classifier outputs")
_RUN = flags.DEFINE_bool("run", False, "also run two steps on random data")


def main(argv):
  del argv
  config = _CONFIG.value
  space = search_space.resolve(config.model)
  cfg = train_step.step_config(config, space)
  model = programs.model_of(config, space, _CLASSES.value)
  tx, _ = optim.make(config.optim, 100, int(config.train.steps))
  mesh = mesh_lib.make_mesh()
  step = train_step.make_train_step(model, tx, cfg, mesh)
  state, batch = programs.abstract_args(config, model, tx, cfg, mesh)
  subnets = train_step.stacked(space, train_step.step_archs(space, cfg, config.seed, 0, 0))
  print(f"space={space.name} classes={_CLASSES.value} batch={config.train.batch_size}+"
        f"{config.train.unlabelled_batch_size if cfg.uses_unlabelled else 0} "
        f"variant={cfg.variant} image_size={cfg.image_size} "
        f"resolutions={list(space.resolutions)} backend={jax.default_backend()} "
        f"devices={jax.device_count()}", flush=True)
  # One program per resolution the random subnets can run at (rss: the subnet's).
  for res in sorted(space.resolutions):
    start = time.perf_counter()
    compiled = step.lower(state, batch, subnets, res).compile()
    print(f"program=train_step resolution={res} "
          f"compiled_gib={memory.compiled_gib(compiled):.2f} "
          f"compile_s={time.perf_counter() - start:.1f}", flush=True)
  if not _RUN.value:
    return
  real = jax.device_put(train_step.init_state(supernet.init_variables(model, 0, cfg.image_size),
                                              tx, 0), NamedSharding(mesh, PartitionSpec()))
  rng = np.random.default_rng(0)
  data = {k: jax.device_put((rng.standard_normal(v.shape) if v.dtype == np.float32 else
                             rng.integers(0, _CLASSES.value, v.shape)).astype(v.dtype),
                            v.sharding) for k, v in batch.items()}
  real, m = compiled(real, data, subnets)
  jax.block_until_ready(m)
  start = time.perf_counter()
  real, m = compiled(real, data, subnets)
  jax.block_until_ready(m)
  print(f"peak_rss_gib={memory.peak_rss_gib():.2f} step_s={time.perf_counter() - start:.2f}")


if __name__ == "__main__":
  app.run(main)

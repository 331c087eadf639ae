"""Device memory of a config's train programs, from XLA's memory analysis, without data.

  python benchmarks/step_memory.py --config=configs/aircraft.py [--config.x=y ...] [--run]

Compiles every train program of the config on abstract inputs (`programs.of_schedule`:
the sandwich's teacher, its subnet program at each training resolution and its update;
a teacher-less step's one program per resolution). One line per program:

  program=<name> resolution=<px> compiled_gib=<temp+arguments+outputs-aliased> compile_s=<s> \
      compile_cpu_s=<s>

(compile_cpu_s: the process's user + system seconds over the lowering and compile, every
thread: the figure to compare on a shared machine; every program takes the whole train
state, so its GiB are what is live while it runs), then one line per kind of step, its
peak the largest of its programs':

  step resolution=<px> subnets=<n> peak_gib=<x>

With --run it also executes two steps at the largest resolution on random data and
prints `peak_rss_gib=<x> step_s=<y>` (the second step's wall time). No dataset is read: the
class count comes from --num_classes (aircraft's 100 by default).
"""

from __future__ import annotations

import resource
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
from tofa_jax.space import sampling, search_space  # noqa: E402
from tofa_jax.train import optim, programs, schemes  # noqa: E402
from tofa_jax.train import step as train_step  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "training config", lock_config=True)
_CLASSES = flags.DEFINE_integer("num_classes", 100, "classifier outputs")
_RUN = flags.DEFINE_bool("run", False, "also run two steps on random data")


def _cpu_s() -> float:
  use = resource.getrusage(resource.RUSAGE_SELF)
  return use.ru_utime + use.ru_stime


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
  print(f"space={space.name} classes={_CLASSES.value} batch={config.train.batch_size}+"
        f"{config.train.unlabelled_batch_size if cfg.uses_unlabelled else 0} "
        f"variant={cfg.variant} image_size={cfg.image_size} "
        f"resolutions={list(space.resolutions)} backend={jax.default_backend()} "
        f"devices={jax.device_count()}", flush=True)
  todo = programs.of_schedule(schemes.from_config(config, space), space, cfg)
  compiled = {}
  for p in todo:
    start, cpu = time.perf_counter(), _cpu_s()
    compiled[p] = programs.lower(step, state, batch, space, p).compile()
    name = "train_step" if p.kind == "step" else p.kind
    print(f"program={name} resolution={p.resolution} "
          f"compiled_gib={memory.compiled_gib(compiled[p]):.2f} "
          f"compile_s={time.perf_counter() - start:.1f} compile_cpu_s={_cpu_s() - cpu:.1f}",
          flush=True)
  kinds = sorted(schemes.from_config(config, space).programs(space))
  for res, n in kinds:
    peak = max(memory.compiled_gib(compiled[p])
               for p in train_step.programs_of(cfg, space, res, n))
    print(f"step resolution={res} subnets={n} peak_gib={peak:.2f}", flush=True)
  if not _RUN.value:
    return
  res, n = kinds[-1]
  subnets = train_step.stacked(space, [sampling.max_arch(space)] * n)
  real = jax.device_put(train_step.init_state(supernet.init_variables(model, 0, cfg.image_size),
                                              tx, 0), NamedSharding(mesh, PartitionSpec()))
  rng = np.random.default_rng(0)
  data = {k: jax.device_put((rng.standard_normal(v.shape) if v.dtype == np.float32 else
                             rng.integers(0, _CLASSES.value, v.shape)).astype(v.dtype),
                            v.sharding) for k, v in batch.items()}
  fns = compiled.__getitem__
  real, m = train_step.run(fns, cfg, space, mesh, real, data, subnets, res)
  jax.block_until_ready(m)
  start = time.perf_counter()
  real, m = train_step.run(fns, cfg, space, mesh, real, data, subnets, res)
  jax.block_until_ready(m)
  print(f"peak_rss_gib={memory.peak_rss_gib():.2f} step_s={time.perf_counter() - start:.2f}")

if __name__ == "__main__":
  app.run(main)

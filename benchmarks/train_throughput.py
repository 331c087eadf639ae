"""Train-step and input-pipeline throughput of a training config.

  python benchmarks/train_throughput.py --config=configs/demo.py [--steps=10]
  python benchmarks/train_throughput.py --config=configs/cifar100.py \
      --config.model.resolutions='(128,)' --config.data.image_size=128 --synthetic
  python benchmarks/train_throughput.py --config=configs/demo.py \
      --config.model.resolutions='(64,)' --loop_steps=20

Prints: compile time of the TOFA step's programs (`TrainStep` jits each on first use:
for the sandwich the teacher, the subnet programs and the update, so a step at a
resolution not seen before compiles its subnet program then) with the first step,
train-step images/s (labelled + unlabelled images per second), the input pipeline's
images/s (grain stream with resize, plus on-device weak/strong augmentation), and the
process's peak RSS (on CPU the device memory is host memory). `--synthetic` feeds random uint8
images instead of the dataset (for datasets not prepared on this machine).

`--loop_steps=K` also runs the real training loop (`train_and_evaluate`, in a
temporary workdir) for 3K steps, logging every K, and prints its steady-state
ms/step (the images/s its log reports over steps K+1..3K)
next to the bare step's: the difference is the loop's overhead per step (data
loading, host-to-device transfer, augmentation dispatch, sampling, Omega and
any host sync).
"""

from __future__ import annotations

import contextlib
import io
import re
import resource
import sys
import tempfile
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, ".")

from tofa_jax.data import augment, datasets, input_pipeline  # noqa: E402
from tofa_jax.model import supernet  # noqa: E402
from tofa_jax.runtime import mesh as mesh_lib  # noqa: E402
from tofa_jax.space import search_space  # noqa: E402
from tofa_jax.train import optim, programs  # noqa: E402
from tofa_jax.train import step as train_step  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "training config", lock_config=True)
_STEPS = flags.DEFINE_integer("steps", 10, "timed steps")
_SYNTHETIC = flags.DEFINE_bool("synthetic", False, "random images instead of the dataset")
_LOOP_STEPS = flags.DEFINE_integer("loop_steps", 0, "also time the training loop: 3K steps, "
                                   "logged every K (0: skip)")


class _Tee(io.StringIO):
  def write(self, s):
    sys.__stdout__.write(s)
    return super().write(s)


def loop_ms_per_step(config, k: int, per_step: int) -> float:
  """Steady-state ms/step of `train_and_evaluate`: from the images/s its log lines
  report at steps 2K and 3K (not the first interval's, which holds the start-up)."""
  from tofa_jax.train import loop

  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.train.steps, config.train.log_every = 3 * k, k
    config.train.eval_every, config.train.checkpoint_every = 0, 10 ** 9
  out = _Tee()
  with tempfile.TemporaryDirectory() as workdir, contextlib.redirect_stdout(out):
    loop.train_and_evaluate(config, workdir)
  rates = [float(v) for v in re.findall(r"train/images_per_s=([0-9.e+]+)", out.getvalue())]
  if len(rates) < 2:
    raise RuntimeError(f"expected images/s at steps 2K and 3K in the log, got {rates}")
  return 1000 * per_step / (sum(rates[-2:]) / 2)


def main(argv):
  del argv
  config = _CONFIG.value
  space = search_space.resolve(config.model)
  res = train_step.image_size(config, space)
  bl, bu = config.train.batch_size, config.train.unlabelled_batch_size
  cfg = train_step.StepConfig(variant=config.loss.variant, scheme=config.train.sampling,
                              num_random=config.train.num_random, image_size=res)
  model = programs.model_of(config, space, 10)
  variables = supernet.init_variables(model, seed=0, resolution=res)
  tx, sched = optim.make(config.optim, 10, 1000)
  mesh = mesh_lib.make_mesh()
  step = train_step.make_train_step(model, tx, cfg, mesh, sched)
  state = jax.device_put(train_step.init_state(variables, tx, 0),
                         jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
  aug = augment.AugmentConfig(**config.augment)
  weak = jax.jit(lambda k, x: augment.weak(k, x, aug))
  strong = jax.jit(lambda k, x: augment.strong(k, x, aug))

  if _SYNTHETIC.value:
    src = datasets.ArraySource(
        np.random.default_rng(0).integers(0, 256, (512, res, res, 3)).astype(np.uint8),
        np.arange(512) % 10, 10)
  else:
    src = datasets.load(config.data, "train")
  stream = input_pipeline.train_stream(src, np.arange(len(src)), bl, res, 0,
                                       threads=config.data.threads)
  key = jax.random.PRNGKey(0)

  def batch(i):
    lab = next(stream)
    unl = next(stream)["image"][:bu] if cfg.uses_unlabelled else None
    k = jax.random.fold_in(key, i)
    out = {"images": weak(k, lab["image"]), "labels": lab["label"]}
    if unl is not None:
      out["unlabelled_weak"] = weak(k, unl)
      out["unlabelled_strong"] = strong(k, unl)
    return out

  def run(state, b, i):
    archs = train_step.step_archs(space, cfg, 0, i, 0)
    return step(state, b, train_step.stacked(space, archs), train_step.step_resolution(archs))

  t = time.perf_counter()
  b = batch(0)
  state, m = run(state, b, 0)
  jax.block_until_ready(m["loss"])
  print(f"compile + first step: {time.perf_counter() - t:.1f} s")
  t = time.perf_counter()
  for i in range(1, _STEPS.value + 1):
    state, m = run(state, b, i)
  jax.block_until_ready(m["loss"])
  dt = (time.perf_counter() - t) / _STEPS.value
  per_step = bl + (bu if cfg.uses_unlabelled else 0)
  print(f"train step: {dt * 1000:.0f} ms/step, {per_step / dt:.1f} images/s "
        f"({bl}+{bu if cfg.uses_unlabelled else 0} images, space {space.name}, {res} px)")
  t = time.perf_counter()
  n = 0
  for i in range(_STEPS.value):
    jax.block_until_ready(batch(i))
    n += per_step
  print(f"input pipeline (grain + on-device augmentation): "
        f"{n / (time.perf_counter() - t):.1f} images/s")
  if _LOOP_STEPS.value:
    loop_ms = loop_ms_per_step(config, _LOOP_STEPS.value, per_step)
    print(f"training loop: {loop_ms:.0f} ms/step; bare step {dt * 1000:.0f} ms/step; "
          f"loop overhead {loop_ms - dt * 1000:+.0f} ms/step "
          f"({100 * (loop_ms / (dt * 1000) - 1):+.1f}%)")
  print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GiB")


if __name__ == "__main__":
  app.run(main)

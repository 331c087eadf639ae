"""Wall time to compile every train program of a config, on 1 thread or on several.

  python benchmarks/compile_programs.py --config=configs/aircraft.py --threads=1,2 \
      [--num_classes=C] [--config.x=y ...]

Compiles the config's programs (`programs.of_schedule`: a sandwich's teacher, its
subnet programs by resolution and its update; a teacher-less scheme's step programs by
resolution, in that order) on abstract inputs as the trainer does before step 1
(`programs.compile_all`: lowering on the main thread, XLA compiles on `--threads`
threads), once per thread count, with JAX's persistent cache off so each round
compiles. `train.remat=auto` is compiled as `layer` (what it picks on a CPU). One line
per round:

  programs=<R> threads=<n> wall_s=<s> per_program_s=<s,...>

`per_program_s` lists each program's lowering + compile seconds in that order.
"""

from __future__ import annotations

import sys
import time

import jax
from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, ".")

from tofa_jax.train import programs  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "training config", lock_config=True)
_THREADS = flags.DEFINE_list("threads", ["1", "2"], "compile threads, one round each")
_CLASSES = flags.DEFINE_integer("num_classes", 100, "classifier outputs")


def main(argv):
  del argv
  jax.config.update("jax_enable_compilation_cache", False)
  run = programs.abstract_run(_CONFIG.value, _CLASSES.value)
  for threads in map(int, _THREADS.value):
    step = run.make_step()
    lines = []
    t = time.perf_counter()
    programs.compile_all(step, run.state, run.batch, run.space, run.todo, threads=threads,
                         say=lines.append)
    wall = time.perf_counter() - t
    each = [x.split(": ")[1].split(" s,")[0] for x in lines if x.startswith("compiled ")]
    print(f"programs={len(run.todo)} threads={threads} wall_s={wall:.1f} "
          f"per_program_s={','.join(each)}", flush=True)


if __name__ == "__main__":
  app.run(main)

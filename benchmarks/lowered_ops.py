"""The ops a config's train programs would run on a platform, counted without its hardware.

  python benchmarks/lowered_ops.py --config=configs/aircraft.py --platform=cuda \
      [--devices=N] [--dump=DIR] [--num_classes=C] [--config.x=y ...]

Lowers every train program of the config (`programs.of_schedule`: the sandwich's
teacher, one subnet program per resolution and the update; a teacher-less step's one
program per resolution and number of subnets) to StableHLO for `--platform`
(`jax.jit(...).trace(...).lower(lowering_platforms=...)`) on abstract arguments, over
`--devices` fake CPU devices (set before JAX starts). Nothing compiles and no dataset is
read: the class count comes from the dataset's facts (`config/facts.py`; an unprepared
TFDS dataset from its builder's metadata, else `--num_classes`). One line per program:

  program=<train_step|teacher|subnet|update> resolution=<px> platform=<p> \
      conditionals=<n> all_reduces=<n> while_loops=<n>

counting `stablehlo.case` + `stablehlo.if`, `stablehlo.all_reduce` and `stablehlo.while`
in the module text: ops written once, however often a loop runs them (the update's
resolution is 0). Then one line per kind of step (resolution, number of subnets), its
programs' counts summed over the calls it makes (a subnet program once per subnet):

  step resolution=<px> subnets=<n> calls=<n> conditionals=<n> all_reduces=<n> while_loops=<n>

XLA:GPU copies each conditional's predicate to the host and waits; TPUs run them on
the chip. `--dump=DIR` writes each module as DIR/<program>_<px>[_<subnets>].mlir.

The config's platform-dependent 'auto' settings are resolved as on `--platform` (the
first line says how): `model.depthwise_impl` lax off the CPU, `model.dtype` bf16 off the
CPU (a GPU of compute capability >= 8.0 assumed), `model.conditional` off on cuda, and
`train.remat=auto` as `layer` (it needs the device's memory to decide).
"""

from __future__ import annotations

import os
import re
import sys

_DEVICES = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--devices=")), "1")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           f" --xla_force_host_platform_device_count={_DEVICES}")

import jax  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

sys.path.insert(0, ".")

from tofa_jax.config import facts  # noqa: E402
from tofa_jax.data import datasets  # noqa: E402
from tofa_jax.model import supernet  # noqa: E402
from tofa_jax.runtime import mesh as mesh_lib  # noqa: E402
from tofa_jax.space import search_space  # noqa: E402
from tofa_jax.train import optim, programs, schemes  # noqa: E402
from tofa_jax.train import step as train_step  # noqa: E402

PLATFORMS = ("cuda", "rocm", "tpu", "cpu")
_CONFIG = config_flags.DEFINE_config_file("config", None, "training config", lock_config=True)
_PLATFORM = flags.DEFINE_enum("platform", "cuda", PLATFORMS, "platform to lower for")
flags.DEFINE_integer("devices", 1, "fake CPU devices of the mesh (read before JAX starts)")
_DUMP = flags.DEFINE_string("dump", "", "folder for each program's StableHLO text")
_CLASSES = flags.DEFINE_integer("num_classes", None, "classifier outputs, where the dataset's "
                                "facts do not say")

# An op's name where the text uses it: `"stablehlo.case"(` (generic form) or
# `stablehlo.while(` (custom form); a name inside a string attribute has no such prefix.
_OP = re.compile(r'(?:^|[\s="])stablehlo\.(case|if|all_reduce|while)\b', re.M)


def count_ops(text: str) -> dict[str, int]:
  """{'conditionals', 'all_reduces', 'while_loops'} in a StableHLO module's text."""
  found = [m.group(1) for m in _OP.finditer(text)]
  return {"conditionals": found.count("case") + found.count("if"),
          "all_reduces": found.count("all_reduce"), "while_loops": found.count("while")}


def for_platform(config, platform: str) -> list[str]:
  """Sets the config's platform-dependent 'auto' keys as on `platform`; returns them."""
  off_cpu = platform != "cpu"
  rules = {("model", "depthwise_impl"): "lax" if off_cpu else "shift",
           ("model", "dtype"): "bfloat16" if off_cpu else "float32",
           ("model", "conditional"): ("on" if supernet.resolve_conditional("auto", platform)
                                      else "off"),
           ("train", "remat"): "layer"}
  said = []
  for (group, key), value in rules.items():
    if group in config and config[group].get(key) == "auto":
      config[group][key] = value
      said.append(f"{group}.{key}={value}")
  return said


def class_count(config) -> int:
  if _CLASSES.value:
    return _CLASSES.value
  n = facts.num_classes(config.data)
  if n is None and config.data.name in datasets.TFDS_NAMES:
    try:  # the builder's metadata says it without the data
      import tensorflow_datasets as tfds

      if config.data.name == "aircraft":
        from tofa_jax.data import fgvc_aircraft  # noqa: F401 - registers the builder
      builder = tfds.builder(datasets.TFDS_NAMES[config.data.name])
      n = int(builder.info.features["label"].num_classes)
    except Exception:  # noqa: BLE001 - tfds raises many types; the error below says what to do
      n = None
  if n is None:
    raise app.UsageError(f"data.name={config.data.name!r}: its class count is unknown "
                         "without the data; pass --num_classes")
  return n


def main(argv):
  del argv
  config, platform = _CONFIG.value, _PLATFORM.value
  with config.unlocked():
    resolved = for_platform(config, platform)
  space = search_space.resolve(config.model)
  classes = class_count(config)
  cfg = train_step.step_config(config, space)
  model = supernet.from_config(config, space, classes)
  tx, sched = optim.make(config.optim, 10, int(config.train.steps))
  mesh = mesh_lib.make_mesh()
  step = train_step.make_train_step(model, tx, cfg, mesh, sched)
  state, batch = programs.abstract_args(config, model, tx, cfg, mesh)
  todo = programs.of_schedule(schemes.from_config(config, space), space, cfg)
  print(f"space={space.name} classes={classes} devices={jax.device_count()} "
        f"programs={len(todo)} platform={platform}"
        + (f" ('auto' as on {platform}: {' '.join(resolved)})" if resolved else ""), flush=True)
  if _DUMP.value:
    os.makedirs(_DUMP.value, exist_ok=True)
  shared = {(p.kind, p.resolution) for p in todo
            if sum((q.kind, q.resolution) == (p.kind, p.resolution) for q in todo) > 1}
  counted = {}
  for p in todo:
    text = programs.lower(step, state, batch, space, p, platform).as_text()
    name = "train_step" if p.kind == "step" else p.kind
    # progressive_shrinking has several programs per resolution: their subnets tell them apart
    which = f"_{p.subnets}" if (p.kind, p.resolution) in shared else ""
    if _DUMP.value:
      with open(os.path.join(_DUMP.value, f"{name}_{p.resolution}{which}.mlir"), "w") as f:
        f.write(text)
    counted[p] = count_ops(text)
    counts = " ".join(f"{k}={v}" for k, v in counted[p].items())
    print(f"program={name} resolution={p.resolution} platform={platform} {counts}"
          + (f" subnets={p.subnets}" if which else ""), flush=True)
  for res, n in sorted(schemes.from_config(config, space).programs(space)):
    calls = train_step.programs_of(cfg, space, res, n)
    total = {k: sum(counted[p][k] for p in calls) for k in counted[calls[0]]}
    print(f"step resolution={res} subnets={n} calls={len(calls)} "
          + " ".join(f"{k}={v}" for k, v in total.items()), flush=True)

if __name__ == "__main__":
  app.run(main)

"""The run's programs: which a schedule needs, and train.remat=auto's choice per program
against the device's memory (memory_stats mocked), on the tiny space."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers.configs import tiny_config
from tofa_jax.model import supernet
from tofa_jax.runtime import memory, memory_maps
from tofa_jax.runtime import mesh as mesh_lib
from tofa_jax.space import search_space
from tofa_jax.train import optim, programs, schemes
from tofa_jax.train import step as train_step


def test_programs_of_a_schedule_and_of_a_step():
  cfg = tiny_config(**{"model.resolutions": (), "train.num_random": 2})  # (32, 40)
  space = search_space.resolve(cfg.model)
  schedule = schemes.from_config(cfg, space)
  step_cfg = train_step.step_config(cfg, space)
  todo = programs.of_schedule(schedule, space, step_cfg)
  P = programs.Program  # noqa: N806
  assert todo == [P(40, 0, "teacher"), P(32, 3, "subnet"), P(40, 3, "subnet"), P(0, 0, "update")]
  drawn = set()
  for step in range(8):  # every step runs listed programs: teacher, min, 2 random, update
    archs = schedule.archs(space, 0, step)
    res = archs[-1].resolution
    drawn.add(res)
    assert programs.of_archs(archs, step_cfg, space) == [
        P(40, 0, "teacher"), P(32, 3, "subnet"), P(res, 3, "subnet"), P(res, 3, "subnet"),
        P(0, 0, "update")]
  assert drawn == {32, 40}
  # A teacher-less scheme: one program per (resolution, number of subnets).
  rss = tiny_config(**{"model.resolutions": (), "train.sampling": "rss_batch",
                       "loss.variant": "fm"})
  rss_cfg = train_step.step_config(rss, space)
  assert programs.of_schedule(schemes.from_config(rss, space), space, rss_cfg) == [
      P(32, 1), P(40, 1)]
  shapes = programs.abstract_subnets(space, 3)
  real = train_step.stacked(space, schedule.archs(space, 0, 0))
  assert {k: (v.shape, v.dtype) for k, v in shapes.items()} == {
      k: (v.shape, v.dtype) for k, v in real.items()}


class _ToyStep:
  """Programs shaped as a step's (state, batch, subnets) that compile in milliseconds
  and say which resolution they were compiled for."""

  def lower(self, program, state, batch, subnets, platform=None):
    del platform
    res = program.resolution
    return jax.jit(lambda state, batch, subnets: state * res + batch.sum()
                   + sum(v.sum() for v in subnets.values())).trace(state, batch,
                                                                    subnets).lower()


def _toy_step():
  return _ToyStep()


def test_compile_all_compiles_each_program_once_on_threads():
  space = search_space.resolve(tiny_config().model)
  todo = [programs.Program(r, 1) for r in (32, 40, 48)]
  lines = []
  state, batch = jnp.float32(1.0), jnp.zeros(2, jnp.float32)
  got = programs.compile_all(_toy_step(), state, batch, space, todo, threads=2,
                             say=lines.append)
  assert sorted(got, key=programs.Program.sort_key) == todo
  zeros = {k: np.zeros(v.shape, v.dtype) for k, v in programs.abstract_subnets(space, 1).items()}
  assert [float(got[p][0](state, batch, zeros)) for p in todo] == [32.0, 40.0, 48.0]
  assert [x for x in lines if x.startswith("compiling")] == [
      f"compiling program {k}/3 ({r} px) ..." for k, r in ((1, 32), (2, 40), (3, 48))]
  assert sorted(re.sub(r": .*", "", x) for x in lines if x.startswith("compiled")) == [
      f"compiled program {k}/3 ({r} px)" for k, r in ((1, 32), (2, 40), (3, 48))]


def test_compile_all_stops_after_the_first_when_the_rest_would_not_fit(monkeypatch):
  monkeypatch.setattr(memory_maps, "limit", lambda: 1)  # the CPU's memory-map limit
  space = search_space.resolve(tiny_config().model)
  lines = []
  with pytest.raises(ValueError, match=r"^the train program \(32 px\): each compiled "):
    programs.compile_all(_toy_step(), jnp.float32(1.0), jnp.zeros(2, jnp.float32), space,
                         [programs.Program(r, 1) for r in (32, 40, 48)], say=lines.append)
  assert [x.split(":")[0] for x in lines] == ["compiling program 1/3 (32 px) ...",
                                              "compiled program 1/3 (32 px)"]


class _Device:
  def __init__(self, stats):
    self.stats = stats

  def memory_stats(self):
    return self.stats


def test_device_limit_reads_memory_stats(monkeypatch):
  assert memory.device_limit_bytes() is None  # the CPU reports no stats
  monkeypatch.setattr(jax, "local_devices", lambda: [_Device({"bytes_limit": 80 * 2**30})])
  assert memory.device_limit_bytes() == 80 * 2**30
  monkeypatch.setattr(jax, "local_devices", lambda: [_Device({"bytes_in_use": 5})])
  assert memory.device_limit_bytes() is None


@pytest.mark.heavy(60)
def test_remat_auto_picks_none_where_it_fits_and_layer_elsewhere(monkeypatch):
  # The smallest program: one subnet, labelled loss only, 32 px.
  cfg = tiny_config(**{"train.sampling": "single_min", "loss.variant": "lab"})
  space = search_space.resolve(cfg.model)
  step_cfg = train_step.step_config(cfg, space)
  model = programs.model_of(cfg, space, 10)
  tx, sched = optim.make(cfg.optim, 10, 10)
  mesh = mesh_lib.make_mesh()
  state = jax.eval_shape(lambda: train_step.init_state(
      supernet.init_variables(model, resolution=32), tx, 0))
  batch = train_step.abstract_batch(step_cfg, 8, 8, mesh)
  todo = programs.of_schedule(schemes.from_config(cfg, space), space, step_cfg)
  assert todo == [programs.Program(32, 1)]
  built = []

  def make_step(remat):
    built.append(remat)
    return train_step.make_train_step(model.clone(remat=remat), tx, step_cfg, mesh, sched)

  def run(limit):
    lines = []
    stats = None if limit is None else {"bytes_limit": limit}
    with monkeypatch.context() as m:
      m.setattr(jax, "local_devices", lambda: [_Device(stats)])
      compiled, chosen = programs.compile_run("auto", make_step, state, batch, space, todo,
                                              say=lines.append)
    return compiled[todo[0]], chosen[todo[0]], lines

  # The CPU: no limit, so layer, and none is never built.
  layer, chosen, lines = run(None)
  assert (chosen, built) == ("layer", ["layer"])
  assert lines[0] == ("train.remat=auto: layer (the cpu backend reports no memory limit, so "
                      "none is not compiled)")
  assert [x.split(":")[0] for x in lines[1:]] == ["compiling program 1/1 (32 px) ...",
                                                  "compiled program 1/1 (32 px)"]
  layer_gib = memory.compiled_gib(layer)

  built.clear()
  none, chosen, lines = run(10 * 2**30)  # fits: none, compiled once
  none_gib = memory.compiled_gib(none)
  assert (chosen, built) == ("none", ["none"])
  assert lines[2] == (f"train.remat=auto: none for program 1/1 (32 px): none needs "
                      f"{none_gib:.3g} GiB, within 9 GiB (90% of the device's 10 GiB)")
  assert none_gib > layer_gib  # what layer remat is for

  built.clear()
  limit = int(none_gib * 2**30)  # none's own figure: over 90% of it
  again, chosen, lines = run(limit)
  assert (chosen, built) == ("layer", ["none", "layer"])
  assert lines[2] == (f"train.remat=auto: layer for program 1/1 (32 px): none needs "
                      f"{none_gib:.3g} GiB, over {0.9 * limit / 2**30:.3g} GiB (90% of the "
                      f"device's {limit / 2**30:.3g} GiB)")
  assert lines[3:4] == ["compiling program 1/1 (32 px) ..."]  # compiled again, with layer
  assert memory.compiled_gib(again) == layer_gib

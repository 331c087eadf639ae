"""TOFA loss terms against NumPy, the jitted step's wiring, Omega, optimiser, devices."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

from helpers.model import jit_apply, randomized_variables
from helpers.paths import ROOT
from helpers.xla_env import xla_flags
from tofa_jax.model import supernet
from tofa_jax.runtime import mesh as mesh_lib
from tofa_jax.space import arch as A
from tofa_jax.space import sampling
from tofa_jax.space.search_space import get_space
from tofa_jax.train import losses, optim, schemes, step_log, subnet_record
from tofa_jax.train import step as train_step


def np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_smoothed_ce(logits, labels, alpha):
  c = logits.shape[-1]
  targets = np.full(logits.shape, alpha / c)
  targets[np.arange(len(labels)), labels] += 1 - alpha
  return -(targets * np_log_softmax(logits)).sum(-1)


def np_soft_ce(student, teacher, t):
  p = np.exp(np_log_softmax(teacher / t))
  return -(p * np_log_softmax(student / t)).sum(-1) * t * t


def test_loss_terms_match_numpy():
  rng = np.random.default_rng(0)
  logits = rng.standard_normal((6, 5)).astype(np.float32) * 3
  labels = np.array([0, 1, 2, 3, 4, 0])
  np.testing.assert_allclose(losses.labelled(logits, labels, 0.1),
                             np_smoothed_ce(logits, labels, 0.1).mean(), rtol=1e-6)
  # FixMatch: rows 0 and 3 are confident (> 0.95), the others not.
  weak = np.zeros((4, 5), np.float32)
  weak[0, 2], weak[3, 4], weak[1, 1], weak[2, 0] = 8.0, 9.0, 1.0, 2.5
  strong = rng.standard_normal((4, 5)).astype(np.float32)
  loss, mask, pseudo = losses.fixmatch(weak, strong, 0.95, 0.1)
  np.testing.assert_array_equal(mask, [1, 0, 0, 1])
  np.testing.assert_array_equal(pseudo, [2, 1, 0, 4])
  want = (np_smoothed_ce(strong, np.array([2, 1, 0, 4]), 0.1) * np.array([1, 0, 0, 1])).mean()
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  teacher = rng.standard_normal((6, 5)).astype(np.float32)
  for t in (1.0, 4.0):
    np.testing.assert_allclose(losses.distill(logits, teacher, t),
                               np_soft_ce(logits, teacher, t).mean(), rtol=1e-5)
  got = losses.subnet_labelled(logits, teacher, labels, beta=0.9, temperature=2.0, alpha=0.1)
  want = 0.9 * np_soft_ce(logits, teacher, 2.0).mean() + 0.1 * np_smoothed_ce(
      logits, labels, 0.1).mean()
  np.testing.assert_allclose(got, want, rtol=1e-5)
  with pytest.raises(ValueError, match=r"loss.variant='x' is unknown; choose one of "
                                       r"\['lab', 'fm', 'dist', 'tofa'\]"):
    losses.terms("x")


def _setup(variant="tofa", scheme="sandwich", space_name="tiny", **kw):
  space = get_space(space_name)
  model = supernet.build(space, num_classes=5)  # no dropout: the reference is deterministic
  variables = randomized_variables(model, seed=3)
  # Batches at the space's largest resolution (tiny: 40 px); subnets at 32 px see
  # them rescaled on device.
  size = max(space.resolutions)
  cfg = train_step.StepConfig(variant=variant, scheme=scheme, image_size=size, **kw)
  rng = np.random.default_rng(1)
  image = lambda: rng.standard_normal((4, size, size, 3)).astype(np.float32)  # noqa: E731
  batch = {"images": image(), "labels": np.array([0, 1, 2, 3], np.int32),
           "unlabelled_weak": image(), "unlabelled_strong": image()}
  archs = train_step.step_archs(space, cfg, seed=0, step=5, epoch=0)
  return space, model, variables, cfg, batch, archs


def _train_apply(model, variables, x, arch):
  return jit_apply(model)(variables, x, A.to_arrays(model.space, arch), train=True,
                          resolution=arch.resolution, mutable=("batch_stats",))


def _run_step(step, state, batch, space, archs):
  return step(state, batch, train_step.stacked(space, archs),
              train_step.step_resolution(archs))


def test_sandwich_step_loss_is_tofa_eq4_on_the_same_batch():
  space, model, variables, cfg, batch, archs = _setup(threshold=0.262)
  tx = optax.sgd(0.1, momentum=0.9)
  step = train_step.make_train_step(model, tx, cfg, mesh_lib.make_mesh())
  state = train_step.init_state(jax.tree.map(np.asarray, variables), tx, seed=0)
  new_state, m = _run_step(step, state, batch, space, archs)

  x_max = np.concatenate([batch["images"], batch["unlabelled_weak"], batch["unlabelled_strong"]])
  logits, stats = _train_apply(model, variables, x_max, sampling.max_arch(space))
  logits = np.asarray(logits, np.float64)
  lab = np_smoothed_ce(logits[:4], batch["labels"], 0.1).mean()
  weak, strong = logits[4:8], logits[8:]
  p = np.exp(np_log_softmax(weak))
  mask, pseudo = p.max(-1) > cfg.threshold, p.argmax(-1)
  assert 0 < mask.sum() < 4  # the threshold splits this batch
  fm = (np_smoothed_ce(strong, pseudo, 0.1) * mask).mean()
  x_sub = np.concatenate([batch["images"], batch["unlabelled_weak"]])
  dist_lab = dist_unlab = 0.0
  for a in archs:
    sub = np.asarray(_train_apply(model, variables, x_sub, a)[0], np.float64)
    dist_lab += np_soft_ce(sub[:4], logits[:4], 1.0).mean()
    dist_unlab += np_soft_ce(sub[4:], weak, 1.0).mean()
  np.testing.assert_allclose(m["loss_lab"], lab, rtol=1e-4)
  np.testing.assert_allclose(m["loss_fm"], fm, rtol=1e-4)
  np.testing.assert_allclose(m["mask_rate"], mask.mean(), rtol=1e-6)
  np.testing.assert_allclose(m["loss_dist_lab"], dist_lab, rtol=1e-4)
  np.testing.assert_allclose(m["loss_dist_unlab"], dist_unlab, rtol=1e-4)
  np.testing.assert_allclose(m["loss"], lab + fm + dist_lab + dist_unlab, rtol=1e-4)
  # Running BN statistics are the max subnet's pass over all three views.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               new_state.batch_stats, stats["batch_stats"])
  assert int(new_state.step) == 1


@pytest.mark.parametrize("variant,has", [("lab", set()), ("fm", {"loss_fm"}),
                                         ("dist", {"loss_dist_unlab"})])
def test_variants_select_terms(variant, has):
  # Tracing (eval_shape) shows which terms the step computes, without compiling it.
  space, model, variables, cfg, batch, archs = _setup(variant)
  if variant == "lab":
    batch = {k: batch[k] for k in ("images", "labels")}
  tx = optax.sgd(0.1)
  step = train_step.make_train_step(model, tx, cfg, mesh_lib.make_mesh())
  state = train_step.init_state(jax.tree.map(np.asarray, variables), tx, seed=0)
  _, m = jax.eval_shape(lambda s, b, a: step(s, b, a, archs[-1].resolution),
                        state, batch, train_step.stacked(space, archs))
  assert {"loss_fm", "loss_dist_unlab"} & set(m) == has
  assert {"loss", "loss_lab", "loss_dist_lab"} <= set(m)


def test_step_archs_schemes():
  space = get_space("tiny")  # resolutions (32, 40)
  cfg = train_step.StepConfig()
  archs = train_step.step_archs(space, cfg, seed=0, step=3, epoch=0)
  assert len(archs) == 3
  assert archs[0] == sampling.min_arch(space) and archs[0].resolution == 32
  assert archs == train_step.step_archs(space, cfg, seed=0, step=3, epoch=9)
  assert archs != train_step.step_archs(space, cfg, seed=0, step=4, epoch=0)
  # A step's random subnets share one resolution (one program per resolution);
  # across steps every resolution is drawn.
  per_step = [train_step.step_archs(space, cfg, seed=0, step=s, epoch=0) for s in range(20)]
  assert all(len({a.resolution for a in archs[1:]}) == 1 for archs in per_step)
  assert {train_step.step_resolution(archs) for archs in per_step} == {32, 40}
  ep = train_step.StepConfig(variant="fm", scheme="rss_epoch")
  same_epoch = {train_step.step_archs(space, ep, 0, s, epoch=2)[0] for s in range(5)}
  assert len(same_epoch) == 1
  batch = train_step.StepConfig(variant="lab", scheme="rss_batch")
  drawn = [train_step.step_archs(space, batch, 0, s, 0)[0] for s in range(20)]
  assert len(set(drawn)) > 1 and {a.resolution for a in drawn} == {32, 40}
  with pytest.raises(ValueError, match=r"^train.sampling='rss_epoch' trains with no teacher; "
                                       r"loss.variant must be 'lab' or 'fm'$"):
    train_step.StepConfig(variant="tofa", scheme="rss_epoch")
  with pytest.raises(ValueError, match=r"^train.mode='single' trains one network with no "
                                       r"teacher, but loss.variant='dist' distils; use "
                                       r"loss.variant 'lab' \(the Baseline\) or 'fm' "
                                       r"\(FixMatch\)$"):
    train_step.StepConfig(variant="dist", mode="single")
  assert not train_step.StepConfig(variant="fm", mode="single").teacher
  with pytest.raises(ValueError, match=r"train.sampling='zigzag' is unknown"):
    train_step.StepConfig(scheme="zigzag")


def test_rss_step_trains_the_sampled_subnet_and_its_bn():
  space, model, variables, cfg, batch, _ = _setup("fm", "rss_batch", threshold=0.3)
  archs = train_step.step_archs(space, cfg, seed=0, step=1, epoch=0)
  tx = optax.sgd(0.1)
  step = train_step.make_train_step(model, tx, cfg, mesh_lib.make_mesh())
  state = train_step.init_state(jax.tree.map(np.asarray, variables), tx, seed=0)
  new_state, m = _run_step(step, state, batch, space, archs)
  x = np.concatenate([batch["images"], batch["unlabelled_weak"], batch["unlabelled_strong"]])
  logits, stats = _train_apply(model, variables, x, archs[0])
  logits = np.asarray(logits, np.float64)
  np.testing.assert_allclose(m["loss_lab"],
                             np_smoothed_ce(logits[:4], batch["labels"], 0.1).mean(), rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               new_state.batch_stats, stats["batch_stats"])


@pytest.mark.heavy(65)
def test_eight_devices_equal_one(tmp_path):
  out = tmp_path / "result.json"
  env = dict(os.environ, XLA_FLAGS=xla_flags("--xla_force_host_platform_device_count=8"),
             JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
  subprocess.run([sys.executable, os.path.join(ROOT, "tests", "train", "sharded_step_check.py"),
                  str(out)], check=True, env=env, timeout=900)
  r = json.loads(out.read_text())
  assert r["devices"] == [8, 1]
  assert r["loss_diff"] <= 1e-5 * max(1.0, r["loss"])
  assert r["params_diff"] <= 1e-5
  assert r["stats_diff"] <= 1e-5
  assert r["params_moved"] > 1e-4  # the two steps did update the parameters
  with pytest.raises(ValueError, match=r"train.batch_size=12 does not divide over 8 devices"):
    mesh_lib.check_batch_divides("train.batch_size", 12, 8)


def test_subnet_record_scores_and_jsonl(tmp_path):
  space = get_space("tiny")
  a, b = sampling.min_arch(space), sampling.max_arch(space)
  rec = subnet_record.SubnetRecord()
  rec.update([a, b], 1)
  rec.update([a, a], 2)  # a set: once per iteration
  rec.update([a], 5)
  entries = {k: (e["last"], e["score"], e["count"]) for k, e in rec.entries.items()}
  assert entries == {rec.key(a): (5, 8, 3), rec.key(b): (1, 1, 1)}
  back = subnet_record.SubnetRecord.from_state(rec.to_state())
  assert back.entries == rec.entries
  back.update([b], 7)
  assert back.entries[rec.key(b)]["score"] == 8
  path = str(tmp_path / "subnets.jsonl")
  log = subnet_record.SubnetLog(path)
  log.append(1, [a, b])
  log.append(2, [a])
  log.append(3, [b])
  log.truncate(2)  # a resume from step 2 drops step 3
  with open(path) as f:
    lines = [json.loads(x) for x in f]
  assert [x["step"] for x in lines] == [1, 2]
  assert A.Arch.from_dict(lines[0]["archs"][1]) == b
  # Object stores cannot append: lines wait for `flush` (each checkpoint).
  assert step_log.is_object_store("gs://bucket/run/subnets.jsonl")
  buffered = subnet_record.SubnetLog(path)
  buffered._buffered = True
  buffered.append(3, [a])
  with open(path) as f:
    assert len(f.readlines()) == 2
  buffered.flush()
  with open(path) as f:
    assert [json.loads(x)["step"] for x in f] == [1, 2, 3]
  subnet_record.SubnetLog(path, enabled=False).append(4, [a])  # processes other than 0
  with open(path) as f:
    assert len(f.readlines()) == 3


def test_optimizer_schedule_and_decay_mask():
  cfg = {"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-5, "warmup_epochs": 5}
  tx, sched = optim.make(cfg, steps_per_epoch=10, total_steps=200)
  assert float(sched(0)) == 0.0
  np.testing.assert_allclose(float(sched(25)), 0.005, rtol=1e-6)
  np.testing.assert_allclose(float(sched(50)), 0.01, rtol=1e-6)
  assert float(sched(200)) == pytest.approx(0.0, abs=1e-9)
  params = {"conv": np.ones((1, 1, 2, 2), np.float32), "bn": {"scale": np.ones(2, np.float32),
                                                              "bias": np.ones(2, np.float32)}}
  assert optim.decay_mask(params) == {"conv": True, "bn": {"scale": False, "bias": False}}
  # Zero gradient: only decayed leaves move (after warm-up has a non-zero lr).
  state = tx.init(params)
  zero = jax.tree.map(np.zeros_like, params)
  for _ in range(60):
    updates, state = tx.update(zero, state, params)
  assert np.all(np.asarray(updates["conv"]) < 0)
  assert np.all(np.asarray(updates["bn"]["scale"]) == 0)


def _whole_sandwich_reference(model, cfg, params, batch_stats, batch, subnets, key,
                              resolutions):
  """The sandwich as one loss with one backward (the formulation before the step took
  a backward per subnet): every subnet's activations live until the end. The max
  subnet runs at the largest resolution, subnet i at `resolutions[i]`."""
  def total_loss(p):
    largest = max(model.space.resolutions)
    apply = lambda x, a, k, r=largest: model.apply(  # noqa: E731
        {"params": p, "batch_stats": batch_stats}, x, a, train=True,
        resolution=r, mutable=["batch_stats"], rngs={"dropout": k})
    n_l, n_u = batch["labels"].shape[0], batch["unlabelled_weak"].shape[0]
    x = np.concatenate([batch["images"], batch["unlabelled_weak"], batch["unlabelled_strong"]])
    key_max, key_sub = jax.random.split(key)
    logits, new = apply(x, A.to_arrays(model.space, sampling.max_arch(model.space)), key_max)
    total = losses.labelled(logits[:n_l], batch["labels"], cfg.label_smoothing)
    teacher = jax.lax.stop_gradient(logits[:n_l + n_u])
    fm, _, _ = losses.fixmatch(teacher[n_l:], logits[n_l + n_u:], cfg.threshold,
                               cfg.label_smoothing)
    total = total + fm
    x_sub = x[:n_l + n_u]
    keys = jax.random.split(key_sub, subnets["depth"].shape[0])
    for i in range(subnets["depth"].shape[0]):
      out, _ = apply(x_sub, jax.tree.map(lambda a, i=i: a[i], subnets), keys[i],
                     resolutions[i])
      total = total + losses.subnet_labelled(out[:n_l], teacher[:n_l], batch["labels"],
                                             beta=cfg.beta, temperature=cfg.temperature,
                                             alpha=cfg.label_smoothing)
      total = total + losses.distill(out[n_l:], teacher[n_l:], cfg.temperature)
    return total, new["batch_stats"]

  return jax.value_and_grad(total_loss, has_aux=True)(params)


@pytest.mark.heavy(48)
@pytest.mark.parametrize("drawn", [35, 32])
def test_backward_per_subnet_equals_one_backward_over_the_sandwich(drawn):
  # drawn=32: the random subnets share the min subnet's (smallest) resolution, and the
  # step runs all of them, the min first, through one subnet program. tiny_lite (32 and
  # 35 px): the step's backward per subnet is the same in every space, and its programs
  # compile in about 30% less CPU time than tiny's.
  space = get_space("tiny_lite")
  model = supernet.build(space, num_classes=5, dropout_rate=0.2, drop_connect_rate=0.2)
  variables = randomized_variables(model, seed=3)
  cfg = train_step.StepConfig(variant="tofa", image_size=35, threshold=0.25)
  _, _, _, _, batch, _ = _setup(space_name="tiny_lite")
  archs = train_step.step_archs(space, cfg, seed=0, step=5, epoch=0)
  assert [a.resolution for a in archs] == [32, 35, 35]  # the min at the smallest
  archs = archs[:1] + [dataclasses.replace(a, resolution=drawn) for a in archs[1:]]
  resolutions = [a.resolution for a in archs]
  subnets = train_step.stacked(space, archs)
  params, stats = variables["params"], variables["batch_stats"]
  step = train_step.make_train_step(model, optax.sgd(0.1), cfg, mesh_lib.make_mesh())
  # The step runs sharded (BN moments through a pmean, masks gathered by row) and the
  # reference does not: their forwards differ by rounding, so a relu6 input within
  # rounding of its kink takes slope 1 in one and 0 in the other (a one-sided
  # derivative each, by finite differences). With this step key no input lies that
  # close; with PRNGKey(11) one lay at 7e-7 in one and -2.6e-7 in the other.
  state = train_step.init_state(variables, optax.sgd(0.1), seed=12)
  metrics, grads, new_stats = step.gradients(state, batch, subnets,
                                             train_step.step_resolution(archs))
  loss = sum(v for k, v in metrics.items() if k != "mask_rate")
  key = jax.random.fold_in(state.rng, state.step)  # the step's key
  (want_loss, want_stats), want_grads = jax.jit(
      lambda p: _whole_sandwich_reference(model, cfg, p, stats, batch, subnets, key,
                                          resolutions))(params)
  assert metrics["mask_rate"] > 0  # the FixMatch term is exercised
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  scale = max(float(np.max(np.abs(g))) for g in jax.tree.leaves(want_grads))
  for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * scale)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
               new_stats, want_stats)


def _teacherless_reference(model, cfg, params, batch_stats, batch, subnets, key, resolution):
  """The subnets' summed L^lab + L^FM as one loss with one backward; the running BN
  statistics pass from each subnet's pass to the next, in order."""
  def total_loss(p):
    n_l, n_u = batch["labels"].shape[0], batch["unlabelled_weak"].shape[0]
    x = np.concatenate([batch["images"], batch["unlabelled_weak"], batch["unlabelled_strong"]])
    n = subnets["depth"].shape[0]
    keys = jax.random.split(key, n)
    stats, total = batch_stats, 0.0
    for i in range(n):
      logits, new = model.apply({"params": p, "batch_stats": stats}, x,
                                jax.tree.map(lambda a, i=i: a[i], subnets), train=True,
                                resolution=resolution, mutable=["batch_stats"],
                                rngs={"dropout": keys[i]})
      stats = new["batch_stats"]
      total = total + losses.labelled(logits[:n_l], batch["labels"], cfg.label_smoothing)
      fm, _, _ = losses.fixmatch(jax.lax.stop_gradient(logits[n_l:n_l + n_u]),
                                 logits[n_l + n_u:], cfg.threshold, cfg.label_smoothing)
      total = total + fm
    return total, stats

  return jax.value_and_grad(total_loss, has_aux=True)(params)


def test_teacherless_backward_per_subnet_equals_the_gradient_of_the_summed_loss():
  # Progressive shrinking's width phase with 2 subnets per step (one program, a scan).
  space = get_space("tiny")
  model = supernet.build(space, num_classes=5, dropout_rate=0.2, drop_connect_rate=0.2)
  variables = randomized_variables(model, seed=3)
  cfg = train_step.StepConfig(variant="fm", scheme="progressive_shrinking", image_size=40,
                              threshold=0.25)
  _, _, _, _, batch, _ = _setup()
  sched = schemes.Schedule("progressive_shrinking", steps=4, ps_phases=(0, 0, 0, 1),
                           ps_subnets=(1, 1, 2, 2))
  archs = sched.archs(space, seed=0, step=1)
  assert len(archs) == 2 and archs[0] != archs[1]
  res = train_step.step_resolution(archs)
  subnets = train_step.stacked(space, archs)
  key = jax.random.PRNGKey(11)
  params, stats = variables["params"], variables["batch_stats"]
  (loss, (new_stats, metrics)), grads = jax.jit(train_step.loss_and_grads(model, cfg, res))(
      params, stats, batch, subnets, key)
  (want_loss, want_stats), want_grads = jax.jit(
      lambda p: _teacherless_reference(model, cfg, p, stats, batch, subnets, key, res))(params)
  assert metrics["mask_rate"] > 0  # the FixMatch term is exercised
  assert set(metrics) == {"loss_lab", "loss_fm", "mask_rate"}  # no teacher: no distillation
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  np.testing.assert_allclose(metrics["loss_lab"] + metrics["loss_fm"], want_loss, rtol=1e-5)
  scale = max(float(np.max(np.abs(g))) for g in jax.tree.leaves(want_grads))
  for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * scale)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
               new_stats, want_stats)

"""BN recalibration: cumulative average of the subnet's own batch statistics."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from helpers.model import images
from tofa_jax.model import static_net
from tofa_jax.model.bn_calibration import BNCalibrator
from tofa_jax.space import arch as A
from tofa_jax.space import sampling


def test_recalibrated_stats_are_the_mean_of_subnet_batch_stats(tiny_model):
  space, model, variables = tiny_model
  arch = dataclasses.replace(sampling.sample_arch(space, seed=4, step=0), resolution=32)
  batches = [images(4, 32, seed=s) for s in range(3)]
  calibrated = BNCalibrator(model)(variables, A.to_arrays(space, arch), batches, 32)

  # Reference: the extracted static subnet, BN momentum 0, one batch at a time.
  static, static_vars = static_net.extract(space, arch, variables, 7, bn_momentum=0.0)
  per_batch = [static.apply(static_vars, x, train=True, mutable=["batch_stats"])[1]["batch_stats"]
               for x in batches]
  want = jax.tree.map(lambda *s: np.mean(np.stack(s), axis=0), *per_batch)
  _, got = static_net.extract(space, arch, calibrated, 7)
  jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5),
               got["batch_stats"], want)
  # Parameters are untouched, and statistics outside the subnet keep their values.
  assert calibrated["params"] is variables["params"]
  inactive = (A.to_arrays(space, arch)["depth"][1] < 3)
  layer = "stage1_layer2"
  same = jax.tree.map(np.array_equal, calibrated["batch_stats"][layer],
                      variables["batch_stats"][layer])
  assert all(jax.tree.leaves(same)) == bool(inactive)


def test_one_program_per_resolution(tiny_model):
  space, model, variables = tiny_model
  calib = BNCalibrator(model)
  for step in range(3):
    for res in (32, 40):
      arch = dataclasses.replace(sampling.sample_arch(space, 0, step), resolution=res)
      calib(variables, jax.tree.map(jnp.asarray, A.to_arrays(space, arch)),
            [images(2, res, seed=s) for s in range(2)], res)
  assert calib.step._cache_size() == 2

"""The study's arms: each is a valid training config of the study's base, the quick
settings shrink it, and the palette variants it runs validate."""

import importlib

import pytest

from tofa_jax.config import validate
from tofa_jax.reproduce import arms, context, regnas_tables

BASE = importlib.import_module("configs.study").get_config()


@pytest.mark.parametrize("name", sorted(arms.ARMS))
def test_every_arm_is_a_valid_training_config(name):
  arm = arms.ARMS[name]
  config = arms.arm_config(BASE, arm, seed=2)
  assert "study" not in config and config.seed == 2
  for key, value in arm.overrides:
    node = config
    for part in key.split("."):
      node = node[part]
    assert node == value, key
  assert config.data.num_labelled == (500 if arm.rss else 100)
  validate.training(config)
  validate.training(arms.arm_config(context.quick(BASE), arm, seed=0))


def test_quick_is_one_seed_few_steps_tiny_and_random():
  q = context.quick(BASE)
  assert tuple(q.study.seeds) == (0,) and q.train.steps == BASE.study.quick_steps
  assert (q.model.space, tuple(q.model.resolutions), q.init.checkpoint) == ("tiny_lite", (32,),
                                                                            "random")
  assert BASE.model.space == "lite0" and BASE.init.checkpoint == "lite0-wheel"
  assert tuple(BASE.study.seeds) == (0, 1, 2, 3, 4) and len(BASE.model.resolutions) == 2
  validate.training(q)
  validate.palette(q)


@pytest.mark.parametrize("reward,cas", regnas_tables.VARIANTS)
def test_the_regnas_palettes_validate(reward, cas):
  config = arms.arm_config(BASE, arms.ARMS["tofa"], 0, (
      ("palette.method", "regnas"), ("palette.reward", reward), ("palette.cas", cas)))
  validate.palette(config)

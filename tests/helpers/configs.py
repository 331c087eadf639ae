"""A tiny training config on bundled digits, for end-to-end tests."""

from __future__ import annotations

from configs import default


def tiny_config(**overrides):
  c = default.get_config()
  c.model.space = "tiny"
  c.init.checkpoint = "random"  # no ImageNet weights exist for the tiny spaces
  c.jax_cache_dir = ""  # tests stay out of ~/.cache; the cache test sets its own
  c.data.name = "digits"
  c.data.num_labelled = 50
  c.model.resolutions = (32,)  # one program; the elastic-resolution test sets two
  c.data.threads = 1
  c.train.steps = 3
  c.optim.warmup_epochs = 0  # an epoch here is 90 steps: a warm-up would be fitted to the run
  c.train.batch_size = 8
  c.train.unlabelled_batch_size = 8
  c.train.log_every = 1
  c.train.checkpoint_every = 2
  c.train.eval_every = 0
  c.evals.batch_size = 32
  c.evals.bn_batches = 1
  for key, value in overrides.items():
    set_key(c, key, value)
  return c


def set_key(config, key: str, value) -> None:
  """config['a']['b']['c'] = value for key 'a.b.c' (a ConfigDict or nested dicts)."""
  *path, leaf = key.split(".")
  for p in path:
    config = config[p]
  config[leaf] = value

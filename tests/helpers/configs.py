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
  c.evals.bn_images = 32  # one batch
  for key, value in overrides.items():
    set_key(c, key, value)
  return c


def set_key(config, key: str, value) -> None:
  """config['a']['b']['c'] = value for key 'a.b.c' (a ConfigDict or nested dicts)."""
  *path, leaf = key.split(".")
  for p in path:
    config = config[p]
  config[leaf] = value


def _flat(config, prefix: str = "") -> dict:
  flat = {}
  for key, value in config.items():
    if hasattr(value, "items"):
      flat.update(_flat(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def shrunk(config, **overrides):
  """A dataset config (configs/aircraft.py's, ...) cut to tiny_config's run: every key
  tiny_config changes from configs/default.py, but the data source's, then `overrides`."""
  base = _flat(default.get_config())
  for key, value in _flat(tiny_config()).items():
    if key not in ("data.name", "data.num_labelled") and value != base[key]:
      set_key(config, key, value)
  for key, value in overrides.items():
    set_key(config, key, value)
  return config

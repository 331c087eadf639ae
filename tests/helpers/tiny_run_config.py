"""`tiny_config` as a config file, for tests that run `python -m tofa_jax.main`
(with `tests/` on PYTHONPATH)."""

from helpers.configs import tiny_config


def get_config():
  return tiny_config()

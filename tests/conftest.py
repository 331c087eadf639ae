"""Shared fixtures and the persistent compilation cache of the test session.

Helper functions live in `tests/helpers/` (on the path through pyproject.toml).
"""

from __future__ import annotations

from helpers import xla_env

xla_env.install()  # before JAX starts its backend, which reads XLA_FLAGS

import jax  # noqa: E402
import pytest  # noqa: E402

from helpers.model import randomized_variables  # noqa: E402
from tofa_jax.model import supernet  # noqa: E402
from tofa_jax.space.search_space import get_space  # noqa: E402

# Identical programs (the same train step in several runs of one test, or in the
# xdist workers) compile once: XLA's persistent cache, keyed by the program.
jax.config.update("jax_compilation_cache_dir", xla_env.CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.0)


@pytest.fixture(scope="session")
def tiny_model() -> tuple:
  space = get_space("tiny")
  model = supernet.build(space, num_classes=7)
  return space, model, randomized_variables(model)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
  """The heavy tests (`heavy(seconds)`) first, heaviest first, each followed by one
  light test; the rest keep their order. With README's `-n 2 --maxschedchunk=1`, xdist
  hands each worker the next test when it has one left to run, so a heavy test never
  waits behind another and none starts last, leaving one worker alone for minutes."""
  def seconds(item: pytest.Item) -> float:
    mark = item.get_closest_marker("heavy")
    return mark.args[0] if mark else 0.0
  heavy = sorted((i for i in items if seconds(i)), key=seconds, reverse=True)
  light = [i for i in items if not seconds(i)]
  paired = [t for pair in zip(heavy, light, strict=False) for t in pair]
  items[:] = paired + heavy[len(paired) // 2:] + light[len(paired) // 2:]

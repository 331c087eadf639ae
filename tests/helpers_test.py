"""The compile counter that the no-recompilation tests rely on, and the session's XLA
flags that subprocesses inherit."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from helpers import xla_env
from helpers.compiles import count_compiles

_HIT = "/jax/compilation_cache/cache_hits"


def test_counts_one_per_program_whether_compiled_or_loaded_from_cache():
  # The persistent cache (set up in conftest) keeps programs that took longer
  # than this to compile; 0 makes it keep this small one.
  old = jax.config.jax_persistent_cache_min_compile_time_secs
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  hits = []

  def on_event(event: str, **_kwargs) -> None:
    if event == _HIT:
      hits.append(event)

  jax.monitoring.register_event_listener(on_event)
  try:
    salt = float(np.random.default_rng().integers(1 << 30))  # a program new to the cache
    f = lambda x: jnp.sin(x) * 3.0 + salt  # noqa: E731
    x, y = jnp.ones(7), jnp.zeros(7)
    with count_compiles() as compiled:
      jax.jit(f)(x).block_until_ready()
      jax.jit(f)(y).block_until_ready()  # The same program: no compile.
    jax.clear_caches()
    n_hits = len(hits)
    with count_compiles() as loaded:
      jax.jit(f)(x).block_until_ready()  # From the persistent cache.
    loaded_from_cache = len(hits) - n_hits
    with count_compiles() as other:
      jax.jit(lambda x: f(x) * 2.0)(x).block_until_ready()
  finally:
    jax.monitoring.unregister_event_listener(on_event)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old)
  assert loaded_from_cache == 1
  assert (compiled[0], loaded[0], other[0]) == (1, 1, 1)


def test_a_subprocess_adds_its_xla_flags_to_the_sessions():
  # conftest installed the test flags before JAX started; a subprocess keeps them and
  # adds its own (here 3 fake devices), so both compile with the same backend settings.
  assert all(f in os.environ["XLA_FLAGS"].split() for f in xla_env.TEST_XLA_FLAGS)
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=xla_env.xla_flags("--xla_force_host_platform_device_count=3"))
  r = subprocess.run([sys.executable, "-c", "import os, jax; print(jax.device_count()); "
                      "print(os.environ['XLA_FLAGS'])"],
                     capture_output=True, text=True, env=env, timeout=120, check=True)
  count, flags = r.stdout.splitlines()
  assert count == "3"
  assert flags.split() == [*os.environ["XLA_FLAGS"].split(),
                           "--xla_force_host_platform_device_count=3"]

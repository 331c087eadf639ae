"""The compile counter that the no-recompilation tests rely on."""

import jax
import jax.numpy as jnp
from conftest import count_compiles


def test_counts_one_per_program_whether_compiled_or_loaded_from_cache(tmp_path):
  old = (jax.config.jax_compilation_cache_dir,
         jax.config.jax_persistent_cache_min_compile_time_secs)
  jax.config.update("jax_compilation_cache_dir", str(tmp_path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  try:
    f = lambda x: jnp.sin(x) * 3.0 + jnp.arange(7.0)
    x, y = jnp.ones(7), jnp.zeros(7)
    with count_compiles() as compiled:
      jax.jit(f)(x).block_until_ready()
      jax.jit(f)(y).block_until_ready()  # Same jitted program: no compile.
    jax.clear_caches()
    with count_compiles() as loaded:
      jax.jit(f)(x).block_until_ready()  # From the persistent cache.
    with count_compiles() as other:
      jax.jit(lambda x: f(x) * 2.0)(x).block_until_ready()
  finally:
    jax.config.update("jax_compilation_cache_dir", old[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
  assert (compiled[0], loaded[0], other[0]) == (1, 1, 1)
  assert any(tmp_path.iterdir())

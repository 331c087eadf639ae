"""JAX's persistent compilation cache for training runs (`config.jax_cache_dir`).

A restarted or resumed run then loads its compiled train step from disk instead
of compiling it again (minutes at the paper's resolutions). It is turned on for
single-process runs only: the processes of a multi-host run would share one
directory, which JAX's file cache does not coordinate. An empty `jax_cache_dir`
turns it off, and a directory the user already gave JAX
(`JAX_COMPILATION_CACHE_DIR`) is kept.
"""

from __future__ import annotations

import os

import jax


def enable(directory: str) -> str | None:
  """Points JAX's persistent cache at `directory` (`~` expanded); returns the
  directory in use, or None when the cache stays off."""
  current = jax.config.jax_compilation_cache_dir
  if current:
    return current
  if not directory or jax.process_count() > 1:
    return None
  path = os.path.expanduser(directory)
  os.makedirs(path, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", path)
  return path

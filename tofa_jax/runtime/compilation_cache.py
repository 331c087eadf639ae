"""JAX's persistent compilation cache for training runs (`config.jax_cache_dir`).

A restarted or resumed run then loads its compiled programs from the directory
instead of compiling them again (minutes at the paper's resolutions). An empty
`jax_cache_dir` turns it off, and a directory the user already gave JAX
(`JAX_COMPILATION_CACHE_DIR`) is kept as it is.

In a multi-process run only process 0 writes entries (JAX's rule, so that hosts
do not race on one object store) and every process reads them: the cache saves
the restart's compiles only when every process sees process 0's directory. So a
multi-process run turns it on only after checking that: process 0 writes a
probe file named by a fresh token, every process looks for it, and the cache is
on where all of them saw it (`gs://...`, or a file system shared by the hosts).
JAX builds an entry's key to be the same on every process of a GPU run (it leaves
the device assignment out of it for that) and of a TPU run (one slice topology);
on CPU the keys differ per process (measured), so there it stays off. One line
says why it is off.
"""

from __future__ import annotations

import os
import time
import uuid

import jax
from etils import epath
from jax._src import distributed as jax_distributed

PROBE_KEY = "tofa_jax/compilation_cache_probe"
_PROBE_TIMEOUT_MS = 5 * 60 * 1000  # process 0 may still be importing
# How long a process looks for process 0's probe file: network file systems may
# serve a cached directory listing for a few seconds.
SEEN_WAIT_S = 5.0
_probes = 0  # every process probes in the same order, so the keys agree


def enable(directory: str) -> str | None:
  """Points JAX's persistent cache at `directory` (`~` expanded); returns the
  directory in use, or None when the cache stays off."""
  current = jax.config.jax_compilation_cache_dir
  if current:
    return current
  if not directory:
    return None
  path = os.path.expanduser(directory)
  epath.Path(path).mkdir(parents=True, exist_ok=True)
  if jax.process_count() > 1:
    why = _why_not_shared(path, directory)
    if why:
      if jax.process_index() == 0:
        print(f"persistent compilation cache off: {why}", flush=True)
      return None
  jax.config.update("jax_compilation_cache_dir", path)
  return path


def _why_not_shared(path: str, directory: str) -> str | None:
  """Why the processes of this run cannot share the cache at `path`, or None."""
  if jax.default_backend() == "cpu":
    # XLA:CPU's cache key holds the process's own view of the devices, so only
    # process 0 would load its programs; it would then wait in the first step for
    # the others, which compile, past gloo's 30 s deadline (measured: 2 processes).
    return ("on CPU each process's programs have keys of their own; only process 0 "
            "would load them")
  blind = processes_not_seeing(path)
  if blind:
    return (f"processes {blind} do not see jax_cache_dir={directory!r} as process 0 "
            "does; set --config.jax_cache_dir to storage every host shares (gs://..., a "
            "shared file system) to load compiled programs after a restart")
  return None


def processes_not_seeing(path: str) -> list[int]:
  """The processes that cannot read a file process 0 writes into `path` (within
  SEEN_WAIT_S). Every process must call it, in the same order; it talks through
  the distributed runtime's key-value store, so it compiles nothing."""
  global _probes
  _probes += 1
  # The client orbax also uses; jax has no public key-value API.
  client = jax_distributed.global_state.client
  me, key = jax.process_index(), f"{PROBE_KEY}/{_probes}"
  if me == 0:
    token = uuid.uuid4().hex
    (epath.Path(path) / f".probe-{token}").write_text(token)
    client.key_value_set(f"{key}/token", token)
  token = client.blocking_key_value_get(f"{key}/token", _PROBE_TIMEOUT_MS)
  probe = epath.Path(path) / f".probe-{token}"
  deadline = time.monotonic() + SEEN_WAIT_S
  while not (seen := _reads(probe, token)) and time.monotonic() < deadline:
    time.sleep(0.5)
  client.key_value_set(f"{key}/seen/{me}", "1" if seen else "0")
  client.wait_at_barrier(f"{key}/done", _PROBE_TIMEOUT_MS)
  answers = dict(client.key_value_dir_get(f"{key}/seen/"))
  if me == 0:
    probe.unlink(missing_ok=True)
  return sorted(p for p in range(jax.process_count())
                if answers.get(f"{key}/seen/{p}") != "1")


def _reads(probe: epath.Path, token: str) -> bool:
  try:
    return probe.read_text() == token
  except OSError:
    return False

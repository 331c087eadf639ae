"""A directory of variables (orbax) and `meta.json`: sealed when written, checked when read.

Converted checkpoints (`params_dir`) and exported palette members (`export`) are such
directories. `write` adds checksums of every file (`runtime.file_integrity`); `read`
checks them first, so a flipped byte, a truncated file or a missing one is an error
in one line naming the directory and the file, not a silent wrong model or a page
of orbax traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from tofa_jax.runtime import file_integrity

META_FILE = "meta.json"
VARIABLES_DIR = "variables"


def jax_to_numpy(tree: Any) -> Any:
  """Nested dicts of arrays -> nested dicts of writable NumPy arrays."""
  if isinstance(tree, Mapping):
    return {k: jax_to_numpy(v) for k, v in tree.items()}
  return np.array(tree)


def write(out_dir: str, variables: Any, meta: dict) -> None:
  """OUT/variables, OUT/meta.json and OUT/tofa_checksums.json; `out_dir` must not hold
  variables already (nothing is overwritten)."""
  import orbax.checkpoint as ocp

  path = os.path.join(out_dir, VARIABLES_DIR)
  if os.path.exists(path):
    raise ValueError(f"{out_dir}: {VARIABLES_DIR}/ exists already; choose a new directory")
  os.makedirs(out_dir, exist_ok=True)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(path, jax_to_numpy(variables))
  with open(os.path.join(out_dir, META_FILE), "w") as f:
    json.dump(meta, f, indent=1)
  file_integrity.seal(out_dir)


def read_meta(directory: str, written_by: str) -> dict:
  """meta.json of a checked directory; one-line ValueErrors name what is wrong."""
  path = os.path.join(directory, META_FILE)
  if not os.path.isfile(path):
    raise ValueError(f"{directory}: no {META_FILE}; expected a directory written by "
                     f"{written_by}")
  problem = file_integrity.check(directory)
  if problem is not None:
    raise ValueError(f"{directory} is damaged: {problem}; write it again with {written_by}")
  try:
    with open(path) as f:
      meta = json.load(f)
  except ValueError as e:
    raise ValueError(f"{path} is unreadable ({e}); write it again with {written_by}") from None
  if not isinstance(meta, dict):
    raise ValueError(f"{path} is not a JSON object; write it again with {written_by}")
  return meta


def read_variables(directory: str, written_by: str) -> dict:
  """The variables of a directory whose meta was read with `read_meta`, as NumPy."""
  import orbax.checkpoint as ocp

  path = os.path.join(directory, VARIABLES_DIR)
  try:
    with ocp.StandardCheckpointer() as ckptr:
      return jax_to_numpy(ckptr.restore(path))
  except Exception as e:  # noqa: BLE001 - orbax/tensorstore raise many types
    text = " ".join(str(e).split())[:200]
    raise ValueError(f"{path} cannot be read ({type(e).__name__}: {text}); write it again "
                     f"with {written_by}") from None

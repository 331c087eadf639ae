"""Checksums of a directory's files: written when it is saved, checked before it is read.

A checkpoint or a params directory is a tree of files (orbax's arrays, its JSON
metadata, our JSON items). `seal(directory)` writes `MANIFEST` beside them: the size
and SHA-256 of every file. `check(directory)` recomputes them and returns what is
wrong (a file missing, truncated or changed; the manifest itself unreadable), or
None when every file is as it was saved. A flipped byte in the middle of an array
file, which orbax restores without complaint, is caught here.

Paths are `etils.epath` paths, so the same code serves local disks and gs://.
"""

from __future__ import annotations

import hashlib
import json

from etils import epath

MANIFEST = "tofa_checksums.json"
_CHUNK = 1 << 20


def _digest(path: epath.Path) -> str:
  h = hashlib.sha256()
  with path.open("rb") as f:
    while chunk := f.read(_CHUNK):
      h.update(chunk)
  return h.hexdigest()


def _files(directory: epath.Path, skip: tuple[str, ...]) -> list[epath.Path]:
  left_out = {MANIFEST, *skip}
  return sorted(epath.Path(root) / name for root, _, names in directory.walk()
                for name in names if not (root == directory and name in left_out))


def seal(directory: str | epath.Path, skip: tuple[str, ...] = ()) -> None:
  """Writes `directory/MANIFEST`: {relative path: [bytes, sha256]} of every file but
  the top-level ones named in `skip` (files their writer still updates afterwards)."""
  directory = epath.Path(directory)
  entries = {str(p.relative_to(directory)): [p.stat().length, _digest(p)]
             for p in _files(directory, skip)}
  (directory / MANIFEST).write_text(json.dumps({"version": 1, "files": entries}, indent=0))


def check(directory: str | epath.Path) -> str | None:
  """What is wrong with `directory` against its manifest (one phrase), or None.

  A directory without a manifest (written before checksums existed) is not
  checked here: its reader's own errors decide.
  """
  directory = epath.Path(directory)
  manifest = directory / MANIFEST
  if not manifest.exists():
    return None
  try:
    files = json.loads(manifest.read_text())["files"]
  except (ValueError, KeyError, TypeError) as e:
    return f"{MANIFEST} is unreadable ({type(e).__name__})"
  for name, (size, digest) in sorted(files.items()):
    path = directory / name
    if not path.exists():
      return f"{name} is missing"
    actual = path.stat().length
    if actual != size:
      return f"{name} has {actual} bytes, {size} were written"
    if _digest(path) != digest:
      return f"{name} does not match its checksum"
  return None

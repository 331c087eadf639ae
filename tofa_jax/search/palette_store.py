"""Where palettes live: `WORKDIR/palettes/<name>/`, one folder per palette name.

`name(pc)` is `palette.name`, or one derived from method, metric and budgets
(`rule-mflops-150_300_600`; `rule-mflops-n4` for `palette.num_budgets=4`).
`staged(workdir, name)` is where a run writes: a hidden sibling folder
`.NAME.tmp-PID`, moved in place of `palettes/NAME/` only once the run has
finished (the old folder renamed aside first and removed last). A crash or a
re-run never leaves a palette half-written, and never touches another name's.
`find` gives the palette.json that export, finetune and the Python API read:
a name in a workdir, a folder or the file itself; the newest by default. A
workdir from before names (`WORKDIR/palette/`) reads as the palette 'palette'.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
from collections.abc import Iterator

ROOT = "palettes"
LEGACY = "palette"  # older runs wrote their one palette here
REPORT = "palette.json"
MODELS = "models"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # one safe path component
NAME_RULE = ("1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit "
             "('' derives one)")


def check_name(name: str, key: str = "palette.name") -> str:
  """`name` if it is one safe path component; else a one-line error naming `key`."""
  if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
    raise ValueError(f"{key}={name!r}: use 1 to 100 letters, digits, '.', '_' or '-', "
                     "starting with a letter or digit")
  return name


def name(pc) -> str:
  """`palette.name`, or METHOD-METRIC-BUDGETS (budgets joined by '_', or nN)."""
  given = pc.get("name", "")
  if given:
    return check_name(given)
  budgets = tuple(pc.budgets)
  part = ("_".join(f"{float(b):.6g}".replace("+", "") for b in budgets) if budgets
          else f"n{int(pc.num_budgets)}")
  return check_name(f"{pc.method}-{pc.metric}-{part}")


def palette_dir(workdir: str, palette_name: str) -> str:
  return os.path.join(os.path.abspath(workdir), ROOT, palette_name)


def created_now() -> str:
  """The time a palette is finished, as palette.json's `created` (UTC, sortable)."""
  return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


@contextlib.contextmanager
def staged(workdir: str, palette_name: str) -> Iterator[tuple[str, str]]:
  """(temporary folder to write in, the folder it becomes); swapped in on success."""
  final = palette_dir(workdir, palette_name)
  parent = os.path.dirname(final)
  os.makedirs(parent, exist_ok=True)
  tmp = os.path.join(parent, f".{palette_name}.tmp-{os.getpid()}")
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  try:
    yield tmp, final
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  old = None
  if os.path.exists(final):  # two renames: the old palette stays whole until the new is in
    old = os.path.join(parent, f".{palette_name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(final, old)
  os.rename(tmp, final)
  if old:
    shutil.rmtree(old, ignore_errors=True)


def listing(workdir: str) -> list[tuple[str, str]]:
  """(name, palette.json) of every finished palette in `workdir`, oldest first."""
  found = []
  root = os.path.join(workdir, ROOT)
  names = sorted(n for n in os.listdir(root) if not n.startswith(".")) if os.path.isdir(
      root) else []
  for n in names:
    path = os.path.join(root, n, REPORT)
    if os.path.isfile(path):
      found.append((n, path))
  legacy = os.path.join(workdir, LEGACY, REPORT)
  if os.path.isfile(legacy) and LEGACY not in names:
    found.append((LEGACY, legacy))
  return sorted(found, key=lambda item: _created(item[1]))


def _created(path: str) -> str:
  try:
    with open(path) as f:
      created = json.load(f).get("created")
  except (OSError, ValueError, AttributeError):
    created = None
  if not isinstance(created, str):  # older reports: the file's time
    created = datetime.datetime.fromtimestamp(os.path.getmtime(path),
                                              datetime.UTC).isoformat()
  return created


def find(palette: str = "", workdir: str = "") -> str:
  """The palette.json named by `palette` (a name in `workdir`, a palette folder, a
  palette.json, or a workdir) or, when it is empty, `workdir`'s newest palette."""
  if workdir and (not palette or "/" not in palette and not palette.endswith(".json")):
    if not os.path.isdir(workdir):
      raise ValueError(f"--workdir={workdir}: not a directory")
    found = dict(listing(workdir))
    if not found:
      raise ValueError(f"--workdir={workdir}: no palette in {os.path.join(workdir, ROOT)}; "
                       "make one with python -m tofa_jax.palette")
    if not palette:
      return list(found.values())[-1]
    if palette not in found:
      raise ValueError(f"--palette={palette!r}: no such palette in {workdir}; its palettes: "
                       f"{sorted(found)}")
    return found[palette]
  if not palette:
    raise ValueError("--palette or --workdir is required: a palette.json, a palette folder, "
                     "or a workdir (its newest palette)")
  if os.path.isdir(palette):
    if os.path.isfile(os.path.join(palette, REPORT)):
      return os.path.join(palette, REPORT)
    return find("", palette)  # a workdir: its newest palette
  if not os.path.exists(palette) and check_name_ok(palette):
    raise ValueError(f"--palette={palette}: no such file or folder; a palette's name needs "
                     "--workdir=DIR")
  return palette  # a palette.json; palette_report.read names a missing one


def check_name_ok(text: str) -> bool:
  return bool(NAME_PATTERN.fullmatch(text)) and not text.endswith(".json")

"""What a workdir was trained on, so that a resume cannot silently change it.

`workdir/FILE` records the keys that fix the shape and meaning of the trained
weights: the search space, the dataset and its class count. A run that resumes
a workdir with checkpoints checks them first and stops with an error naming
every key that differs; otherwise it (re)writes the record.

It also records, unchecked, the pretrained start's file (`"init"`: its path, size
and SHA-256, from `weights/pretrained.start_file`): a resume restores trained
weights, so the start no longer matters to it, but the record says what the run
started from.
"""

from __future__ import annotations

import json

from etils import epath

FILE = "run_identity.json"
CONFIG_KEYS = ("model.space", "model.custom_space", "data.name", "data.folder")
RECORDED = ("init",)  # written, never compared on resume


def _get(config, key: str):
  node = config
  for part in key.split("."):
    node = node.get(part) if hasattr(node, "get") else None
  return node.to_dict() if hasattr(node, "to_dict") else node


def of(config, num_classes: int, start: dict | None = None) -> dict:
  """The identity of a run: its CONFIG_KEYS values and its class count, and the start
  file's record when there is one."""
  out = {k: _get(config, k) for k in CONFIG_KEYS}
  out["num_classes"] = int(num_classes)
  if start is not None:
    out["init"] = start
  return json.loads(json.dumps(out))  # tuples as lists, as read back


def check_or_record(workdir: str, identity: dict, resuming: bool, write: bool) -> None:
  """Raises ValueError naming the differing keys when `resuming` a workdir recorded
  with another identity; records `identity` (when `write`) otherwise."""
  path = epath.Path(workdir) / FILE
  if resuming and path.exists():
    try:
      saved = json.loads(path.read_text())
    except ValueError:
      raise ValueError(f"{path} is unreadable; it records what the checkpoints were trained "
                       "on. Restore it, or use a new --workdir") from None
    differ = [k for k in identity if k not in RECORDED and saved.get(k) != identity[k]]
    if differ:
      said = "; ".join(f"{k}: {saved.get(k)!r} there, {identity[k]!r} now" for k in differ)
      raise ValueError(f"--workdir={workdir} holds a run with other {', '.join(differ)} "
                       f"({said}); resume it with its own config, or use a new --workdir")
    return
  if write:
    path.write_text(json.dumps(identity, indent=1))

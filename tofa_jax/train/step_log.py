"""Step-indexed JSON-lines logs in the workdir: `subnets.jsonl` (the subnets each step
trained) and `metrics.jsonl` (the logged training and evaluation scalars, as
big_vision's metrics file), readable without TensorBoard. A resumed run drops the
lines written after its checkpoint, so a file holds one history.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from etils import epath

METRICS_FILE = "metrics.jsonl"  # the workdir's training and evaluation scalars


def is_object_store(path: str) -> bool:
  return str(path).startswith(("gs://", "s3://"))


class StepLog:
  """A JSON-lines file with one line per step, {"step": t, ...}.

  On local and network file systems each line is appended at once; object
  stores (gs://) cannot append, so there the lines are buffered and the file is
  rewritten at every `flush` (each checkpoint).
  """

  def __init__(self, path: str, enabled: bool = True):
    self.path, self.enabled = epath.Path(path), enabled
    self._buffered = is_object_store(path)
    self._pending: list[str] = []

  def write(self, step: int, fields: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    line = json.dumps({"step": step, **fields})
    if self._buffered:
      self._pending.append(line + "\n")
      return
    with self.path.open("a") as f:
      f.write(line + "\n")

  def flush(self) -> None:
    if self.enabled and self._pending:
      old = self.path.read_text() if self.path.exists() else ""
      self.path.write_text(old + "".join(self._pending))
      self._pending = []

  def read(self) -> list[dict[str, Any]]:
    """One dict per step, in step order: the fields of that step's lines merged (a step
    logs its training and its evaluation scalars on two lines); unreadable lines are
    skipped."""
    if not self.path.exists():
      return []
    by_step: dict[int, dict[str, Any]] = {}
    for line in self.path.read_text().splitlines():
      try:
        row = json.loads(line)
        by_step.setdefault(int(row["step"]), {}).update(row)
      except (ValueError, KeyError, TypeError):
        continue
    return [by_step[s] for s in sorted(by_step)]

  def truncate(self, step: int) -> str | None:
    """Drops lines written after the checkpoint a run resumes from. Damaged lines (a
    crash mid-write) are dropped too, after the file is copied aside whole; returns
    a warning line saying so."""
    if not self.enabled or not self.path.exists():
      return None
    text = self.path.read_text()
    kept, damaged = [], []
    for number, line in enumerate(text.splitlines(), 1):
      try:
        if line.strip() and int(json.loads(line)["step"]) <= step:
          kept.append(line + "\n")
      except (ValueError, KeyError, TypeError):
        damaged.append(number)
    warning = None
    if damaged:
      copy, n = self.path.with_name(self.path.name + ".damaged"), 1
      while copy.exists():
        n += 1
        copy = self.path.with_name(f"{self.path.name}.damaged-{n}")
      copy.write_text(text)
      warning = (f"warning: {self.path}: lines {damaged[:5]}{'...' if len(damaged) > 5 else ''}"
                 f" are unreadable and were dropped; the whole file is kept as {copy}")
    self.path.write_text("".join(kept))
    return warning

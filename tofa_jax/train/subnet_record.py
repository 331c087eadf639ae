"""The record Omega of sampled subnets (TOFA Algorithm 1, lines 18-19; section 3.4).

For every subnet sampled for distillation (the min subnet and the random ones;
Algorithm 1 does not add the max subnet) it keeps the last iteration it was
sampled at and its score s(a), the sum of the iterations it was sampled at,
which the fixed selection rule maximises under a budget. Iterations count from
1, as in Algorithm 1. The record lives in checkpoints (`to_state`) and every
step is appended to `workdir/subnets.jsonl`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from etils import epath

from tofa_jax.space import arch as arch_lib


class SubnetRecord:
  """Omega: arch -> {'arch', 'last', 'score', 'count'}."""

  def __init__(self, per_layer: bool = False):
    self.per_layer = per_layer
    self.entries: dict[str, dict[str, Any]] = {}

  def __len__(self) -> int:
    return len(self.entries)

  def key(self, arch: arch_lib.Arch) -> str:
    return arch.to_json(per_layer=True)

  def update(self, archs: Iterable[arch_lib.Arch], iteration: int) -> None:
    """Adds the subnets sampled at `iteration` (a subnet sampled twice in one
    iteration counts once, as a set union does)."""
    for key, arch in {self.key(a): a for a in archs}.items():
      e = self.entries.setdefault(key, {"arch": arch.to_dict(per_layer=True), "last": 0,
                                        "score": 0, "count": 0})
      e["last"] = iteration
      e["score"] += iteration
      e["count"] += 1

  def archs(self) -> list[tuple[arch_lib.Arch, dict[str, Any]]]:
    return [(arch_lib.Arch.from_dict(e["arch"]), e) for e in self.entries.values()]

  def to_state(self) -> str:
    return json.dumps(list(self.entries.values()))

  @classmethod
  def from_state(cls, state: str) -> SubnetRecord:
    rec = cls()
    for e in json.loads(state):
      rec.entries[json.dumps(e["arch"])] = e
    return rec


def is_object_store(path: str) -> bool:
  return str(path).startswith(("gs://", "s3://"))


class SubnetLog:
  """workdir/subnets.jsonl: one line per step, {"step": t, "archs": [...]}.

  On local and network file systems each line is appended at once; object
  stores (gs://) cannot append, so there the lines are buffered and the file is
  rewritten at every `flush` (each checkpoint). Omega itself is in the checkpoint.
  """

  def __init__(self, path: str, enabled: bool = True):
    self.path, self.enabled = epath.Path(path), enabled
    self._buffered = is_object_store(path)
    self._pending: list[str] = []

  def append(self, iteration: int, archs: Iterable[arch_lib.Arch]) -> None:
    if not self.enabled:
      return
    line = json.dumps({"step": iteration, "archs": [a.to_dict(per_layer=True) for a in archs]})
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

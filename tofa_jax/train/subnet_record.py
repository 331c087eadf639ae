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

from tofa_jax.space import arch as arch_lib
from tofa_jax.train import step_log


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


class SubnetLog(step_log.StepLog):
  """workdir/subnets.jsonl: one line per step, {"step": t, "archs": [...]}; Omega
  itself is in the checkpoint."""

  def append(self, iteration: int, archs: Iterable[arch_lib.Arch]) -> None:
    self.write(iteration, {"archs": [a.to_dict(per_layer=True) for a in archs]})

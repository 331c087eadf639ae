"""A palette in Python: `Palette.load(WORKDIR, name=None)`, then `member_for(mflops=...)`.

`load` reads palette.json (`search/palette_store.find`: a name in a workdir, its
newest palette, a palette folder or the file). `member_for` gives the largest
member (by that same measure) within one budget: `mflops`, `params_m` or
`latency_ms` (the palette's batch-1 figure), as a `Member` (`member.py`).
"""

from __future__ import annotations

import os

from tofa_jax.api.member import Member, load_member
from tofa_jax.search import palette_report, palette_store

BUDGETS = ("mflops", "params_m", "latency_ms")


class Palette:
  """A finished palette: its report (palette.json) and its members' folders."""

  def __init__(self, palette_json: str):
    self.path = os.path.abspath(palette_json)
    self.report, self.rows = palette_report.read(self.path)
    self.dir = os.path.dirname(self.path)
    self.name = self.report.get("name") or os.path.basename(self.dir)

  @classmethod
  def load(cls, path: str, name: str | None = None) -> Palette:
    """Palette `name` of the workdir `path`; without a name, `path`'s newest palette (or
    `path` itself when it is a palette folder or a palette.json)."""
    if name:
      return cls(palette_store.find(palette_store.check_name(name, "name"), os.fspath(path)))
    return cls(palette_store.find(os.fspath(path)))

  def __len__(self) -> int:
    return len(self.rows)

  def __repr__(self) -> str:
    return f"Palette({self.name!r}, {len(self)} members, {self.dir})"

  def member_dir(self, index: int) -> str:
    """The static model folder of member `index`: under this palette's folder (it may
    have moved since), else where palette.json says."""
    row = self._row(index)
    here = os.path.join(self.dir, palette_store.MODELS, f"member_{index:02d}")
    d = here if os.path.isdir(here) else row.get("export_dir")
    if not d or not os.path.isdir(d):
      raise ValueError(f"palette {self.name!r}: member {index} has no static model folder; "
                       "run the palette with palette.export=True")
    return d

  def member(self, index: int) -> Member:
    return load_member(self.member_dir(index))

  def member_for(self, *, mflops: float | None = None, params_m: float | None = None,
                 latency_ms: float | None = None) -> Member:
    """The largest member whose `mflops`, `params_m` or `latency_ms` (batch 1) is within
    the one budget given; a one-line error when none is."""
    given = {k: v for k, v in (("mflops", mflops), ("params_m", params_m),
                               ("latency_ms", latency_ms)) if v is not None}
    if len(given) != 1:
      raise ValueError(f"member_for takes one budget, one of {list(BUDGETS)}; got "
                       f"{sorted(given) or 'none'}")
    (key, budget), = given.items()
    cost = {r["member"]: _cost(r, key) for r in self.rows}
    fits = [i for i, c in cost.items() if c <= budget]
    if not fits:
      smallest = min(cost.values(), default=float("nan"))
      raise ValueError(f"no member of palette {self.name!r} fits {key}<={budget:g}; the "
                       f"smallest needs {smallest:.4g}")
    return self.member(max(fits, key=lambda i: (cost[i], i)))

  def _row(self, index: int) -> dict:
    for r in self.rows:
      if r.get("member") == index:
        return r
    raise ValueError(f"palette {self.name!r} has no member {index}; its members: "
                     f"{[r.get('member') for r in self.rows]}")


def _cost(row: dict, key: str) -> float:
  return float(row["latency_ms"]["1"] if key == "latency_ms" else row[key])

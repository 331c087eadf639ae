"""What a section of the results page holds: a claim, a table, plots and a reading."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Section:
  """One comparison of the study.

  Attributes:
    key: file-name stem of the section's outputs.
    title: the heading (which paper table or figure it is the analog of).
    claim: what the paper claims, in one sentence.
    header, rows: the table.
    plots: PNG file names under the study's `plots/`.
    reading: sentences saying whether each claim held at this scale.
    notes: how the section was run (arms, data, settings).
  """

  key: str
  title: str
  claim: str
  header: list[str]
  rows: list[list[str]]
  plots: list[str] = dataclasses.field(default_factory=list)
  reading: list[str] = dataclasses.field(default_factory=list)
  notes: str = ""

  def markdown(self, plot_dir: str, checked: str = "") -> str:
    """The section's Markdown; `checked` (hand-written, from docs/results_checks.md)
    says what was checked where a claim did not reproduce."""
    lines = [f"## {self.title}", "", f"**Claim.** {self.claim}", ""]
    if self.notes:
      lines += [self.notes, ""]
    lines += ["| " + " | ".join(self.header) + " |",
              "|" + "|".join("---" for _ in self.header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in self.rows]
    lines.append("")
    for plot in self.plots:
      lines += [f"![{plot}]({plot_dir}/{plot})", ""]
    lines += ["**Reading.** " + " ".join(self.reading), ""]
    if checked:
      lines += ["**What was checked.** " + checked, ""]
    return "\n".join(lines)

"""The results page: a section's Markdown, the header, and the docs copy with its plots."""

import os

from tofa_jax.reproduce import report, stats
from tofa_jax.reproduce.sections import Section


def _section():
  return Section(key="t3", title="Table 3 analog", claim="A beats B.", header=["method", "top-1"],
                 rows=[["A", "61.0 ± 1.0"], ["B", "58.0 ± 2.0"]], plots=["t3.png"],
                 reading=["A > B: held.", "More."], notes="How it ran.")


def test_a_section_is_a_markdown_table_with_plots_and_reading():
  assert _section().markdown("plots") == "\n".join([
      "## Table 3 analog", "", "**Claim.** A beats B.", "", "How it ran.", "",
      "| method | top-1 |", "|---|---|", "| A | 61.0 ± 1.0 |", "| B | 58.0 ± 2.0 |", "",
      "![t3.png](plots/t3.png)", "", "**Reading.** A > B: held. More.", ""])


def test_the_page_says_how_when_and_where_and_the_docs_copy_points_at_its_plots(tmp_path):
  text = report.page([_section()], "python -m tofa_jax.study --workdir=X", [0, 1, 2], 3600.0,
                     5, quick=False, plot_dir="plots", compute_seconds=5400.0)
  lines = text.splitlines()
  assert lines[0] == "# Reproducing the papers' claims at small scale"
  assert "python -m tofa_jax.study --workdir=X" in lines
  assert any(line.startswith("- Date: ") and line.endswith(" UTC") for line in lines)
  assert any(line.startswith("- Machine: ") and " cores; JAX " in line for line in lines)
  assert "- Seeds: 0, 1, 2 (tables: mean ± sample std over seeds)" in lines
  assert ("- Wall time: 60.0 minutes (5 training runs in this invocation; finished runs of an "
          "earlier one are read back)") in lines
  assert ("- Compute: 1.50 hours, the sum of every kept run's time (training, palettes, "
          "fine-tuning) over all invocations") in lines
  assert "Quick mode" not in text
  assert stats.METHOD in lines  # the verdicts' definitions and the margin, on the page
  assert "Quick mode" in report.page([], "c", [0], 1.0, 0, quick=True, plot_dir="plots",
                                     compute_seconds=0.0)
  root = tmp_path / "study"
  (root / "plots").mkdir(parents=True)
  (root / "plots" / "t3.png").write_bytes(b"png")
  docs = tmp_path / "docs" / "results.md"
  docs.parent.mkdir()
  written = report.write(str(root), text, str(docs))
  assert written == [str(root / "results.md"), str(docs)]
  assert (root / "results.md").read_text() == text
  assert "![t3.png](results/t3.png)" in docs.read_text()
  assert os.path.isfile(tmp_path / "docs" / "results" / "t3.png")
  assert report.write(str(root), text) == [str(root / "results.md")]


def test_what_was_checked_comes_from_the_checks_file_per_section(tmp_path):
  path = tmp_path / "results_checks.md"
  path.write_text("# What was checked\n\nIntro, ignored.\n\n## t3\n\nFirst line,\nsecond.\n\n"
                  "More.\n\n## t4\n\n## empty-last\n")
  assert report.read_checks(str(path)) == {"t3": "First line, second. More."}
  assert report.read_checks(str(tmp_path / "absent.md")) == {} == report.read_checks("")
  text = _section().markdown("plots", "First line, second. More.")
  assert text.endswith("**Reading.** A > B: held. More.\n\n**What was checked.** First line, "
                       "second. More.\n")
  page = report.page([_section()], "c", [0, 1, 2], 1.0, 0, quick=False, plot_dir="plots",
                     compute_seconds=1.0, checks=report.read_checks(str(path)))
  assert page.count("**What was checked.** First line, second. More.") == 1

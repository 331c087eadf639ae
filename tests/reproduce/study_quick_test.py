"""`python -m tofa_jax.study --quick` (what CI runs): every table and plot is produced,
the docs page is left alone, a second invocation reads every run back, and a third on
another workdir (another machine) from the kept results alone retrains what a missing
palette and fine-tuning need, to the same page. Outcomes are not asserted: the quick
study's figures mean nothing."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import xla_env
from helpers.paths import ROOT
from tofa_jax.reproduce import study

PNG = b"\x89PNG\r\n\x1a\n"


def _study(workdir: str, docs: str, kept: str = "") -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  cache = xla_env.CACHE_DIR
  return subprocess.run(
      [sys.executable, "-m", "tofa_jax.study", "--config=configs/study.py", "--quick",
       f"--workdir={workdir}", f"--docs={docs}", f"--config.jax_cache_dir={cache}",
       f"--kept={kept}"],
      capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)


@pytest.mark.heavy(703)
def test_the_quick_study_writes_every_table_and_plot_and_resumes(tmp_path):
  workdir, docs = str(tmp_path / "study"), str(tmp_path / "docs" / "results.md")
  kept = str(tmp_path / "kept")
  r = _study(workdir, docs, kept)
  assert r.returncode == 0, r.stderr[-3000:]
  assert r.stdout.strip().splitlines()[-1] == f"wrote {workdir}/results.md"
  assert not os.path.exists(docs)  # only a full run rewrites docs/results.md
  with open(os.path.join(workdir, "results.md")) as f:
    page = f.read()
  titles = re.findall(r"^## (.+)$", page, flags=re.M)
  assert len(titles) == len(study.SECTIONS)
  for title in ("TOFA Table 3 analog", "TOFA Table 4 analog", "TOFA section 4.6 analog",
                "RSS analog", "RSS Figures 6-7 analog", "REG-NAS analog",
                "REG-NAS section 4.4 analog", "Beyond the papers"):
    assert sum(t.startswith(title) for t in titles) == 1, title
  for block in page.split("\n## ")[1:]:
    table = [line for line in block.splitlines() if line.startswith("| ")]
    assert len(table) >= 2, block[:200]  # a header and at least one row
    assert "**Reading.** " in block and "**Claim.** " in block
  plots = re.findall(r"!\[[^]]*\]\(plots/([^)]+)\)", page)
  assert sorted(plots) == ["rss_bias.png", "rss_schemes.png", "selection.png"]
  for name in plots:
    with open(os.path.join(workdir, "plots", name), "rb") as f:
      assert f.read(8) == PNG
  assert "Quick mode" in page and "- Seeds: 0 (" in page
  again = _study(workdir, docs, kept)
  assert again.returncode == 0, again.stderr[-3000:]
  with open(os.path.join(workdir, "results.md")) as f:
    second = f.read()
  assert "(0 training runs in this invocation;" in second
  strip = lambda text: re.sub(r"- (Date|Wall time): .*", "", text)  # noqa: E731
  assert strip(second) == strip(page)
  # Another machine, from the kept files alone (as docs/results/kept): with one
  # population palette and one fine-tuning not kept, it retrains their supernets
  # (deterministic) and reruns the R2 + CAS palette whose exported members the
  # fine-tuning reads.
  shutil.rmtree(workdir)
  os.remove(os.path.join(kept, "palettes", "population_sandwich_seed0.json"))
  (finetuned,) = glob.glob(os.path.join(kept, "results", "finetune_seed0_member*_fd.json"))
  os.remove(finetuned)
  elsewhere = str(tmp_path / "elsewhere")
  third = _study(elsewhere, docs, kept)
  assert third.returncode == 0, third.stderr[-3000:]
  said = [line.split("] ", 1)[-1] for line in third.stdout.splitlines()]
  for start in ("study: retraining sandwich (seed 0) in ", "study: retraining tofa (seed 0) in ",
                "study: palette regnas_R2_cas_seed0 again on "):
    assert sum(line.startswith(start) for line in said) == 1, (start, said)
  assert not any("differs from its kept result" in line for line in said)
  with open(os.path.join(elsewhere, "results.md")) as f:
    moved = f.read()
  assert "(2 training runs in this invocation;" in moved
  strip = lambda text: re.sub(r"- (Date|Wall time|Compute): .*", "", text)  # noqa: E731
  assert strip(moved.replace(elsewhere, workdir)) == strip(page)  # the command names it

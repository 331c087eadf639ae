"""study.run around its sections: the page, the docs copy, and the checks file's keys."""

import pytest

from configs import study as study_config
from tofa_jax.reproduce import study
from tofa_jax.reproduce.sections import Section


def _fake_section(s) -> Section:
  return Section(key="table3", title="TOFA Table 3 analog", claim="A beats B.",
                 header=["a"], rows=[["1"]], reading=[f"{len(s.seeds)} seeds."])


def test_the_page_quotes_the_checks_file_and_an_unknown_section_is_an_error(tmp_path,
                                                                             monkeypatch):
  monkeypatch.setattr(study, "SECTIONS", (_fake_section,))
  config = study_config.get_config()
  config.jax_cache_dir = ""
  checks = tmp_path / "results_checks.md"
  checks.write_text("## table3\n\nThe seeds agree.\n")
  docs = tmp_path / "docs" / "results.md"
  written = study.run(config, str(tmp_path / "w"), False, "cmd", str(docs), str(checks),
                      log=lambda _: None)
  assert written == [str(tmp_path / "w" / "results.md"), str(docs)]
  assert "**Reading.** 3 seeds.\n\n**What was checked.** The seeds agree.\n" in docs.read_text()
  checks.write_text("## table3\n\nok\n\n## tabel4\n\ntypo\n")
  with pytest.raises(ValueError, match=rf"^{checks} has sections \['tabel4'\]; the study's "
                                       r"are \['table3'\]$"):
    study.run(config, str(tmp_path / "w"), False, "cmd", str(docs), str(checks),
              log=lambda _: None)

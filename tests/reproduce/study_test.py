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
  monkeypatch.setattr(study, "SECTIONS", {"table3": _fake_section, "table4": _fake_section})
  config = study_config.get_config()
  config.jax_cache_dir = ""
  checks = tmp_path / "results_checks.md"
  checks.write_text("## table3\n\nThe seeds agree.\n")
  docs = tmp_path / "docs" / "results.md"
  written = study.run(config, str(tmp_path / "w"), False, "cmd", str(docs), str(checks),
                      log=lambda _: None)
  assert written == [str(tmp_path / "w" / "results.md"), str(docs)]
  assert "**Reading.** 5 seeds.\n\n**What was checked.** The seeds agree.\n" in docs.read_text()
  checks.write_text("## table3\n\nok\n\n## tabel4\n\ntypo\n")
  with pytest.raises(ValueError, match=rf"^{checks} has sections \['tabel4'\]; the study's "
                                       r"are \['table3', 'table4'\]$"):
    study.run(config, str(tmp_path / "w"), False, "cmd", str(docs), str(checks),
              log=lambda _: None)


def test_only_runs_the_sections_named_and_the_page_says_which_it_leaves_out(tmp_path,
                                                                           monkeypatch):
  ran = []
  fake = lambda key: lambda s: ran.append(key) or _fake_section(s)  # noqa: E731
  monkeypatch.setattr(study, "SECTIONS", {"table3": fake("table3"), "table4": fake("table4"),
                                          "selection": fake("selection")})
  config = study_config.get_config()
  config.jax_cache_dir = ""
  docs = tmp_path / "results.md"
  study.run(config, str(tmp_path / "w"), False, "cmd", str(docs), "", log=lambda _: None,
            only=("selection", "table3"))
  assert ran == ["table3", "selection"]  # in the study's order
  assert ("**Partial: this page leaves out table4** (the command's `--only`); the study "
          "without it runs every section.") in docs.read_text()
  study.run(config, str(tmp_path / "w"), False, "cmd", str(docs), "", log=lambda _: None)
  assert ran[2:] == ["table3", "table4", "selection"] and "Partial" not in docs.read_text()
  with pytest.raises(ValueError, match=r"^--only has sections \['tabel3'\]; the study's are "
                                       r"\['table3', 'table4', 'selection'\]$"):
    study.run(config, str(tmp_path / "w"), False, "cmd", str(docs), "", log=lambda _: None,
              only=("table3", "tabel3"))
  assert len(ran) == 5  # refused before any section ran

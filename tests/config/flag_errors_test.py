"""A misspelled config key on the command line: one line from every entry point naming
the key, the nearest known keys and configs/default.py; no traceback."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

import pytest
from absl import flags

from configs import default
from helpers.paths import ROOT
from tofa_jax.config import flag_errors
from tofa_jax.runtime import saved_config

BOGUS = ("error: --config.train.bogus: no config key train.bogus; nearest: train.log_every, "
         "train.batch_size, train.mode (every key is listed in configs/default.py)")


@pytest.mark.parametrize("module,flags_", [
    ("main", ["--config=configs/demo.py", "--workdir=unused"]),
    ("flops", ["--config=configs/demo.py"]),
    ("latency_table", ["--config=configs/demo.py", "--out=unused"]),
])
def test_an_entry_point_says_an_unknown_key_in_one_line(module, flags_):
  # These parse their flags before importing jax: a second each.
  r = subprocess.run([sys.executable, "-m", f"tofa_jax.{module}", *flags_,
                      "--config.train.bogus=3"], capture_output=True, text=True, cwd=ROOT,
                     env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
  assert (r.returncode, r.stderr, r.stdout) == (1, BOGUS + "\n", "")


def test_every_entry_point_with_a_config_flag_parses_through_flag_errors():
  # palette and study import jax before parsing (10 s each): their wiring is read here,
  # and their configs (a saved run, a default file) go through the same functions below.
  found = {}
  for path in glob.glob(os.path.join(ROOT, "tofa_jax", "*.py")):
    with open(path) as f:
      text = f.read()
    if "DEFINE_config_file(" in text or "define_config_file(" in text:
      found[os.path.basename(path)] = (
          bool(re.search(r"flag_errors\.run\(main", text)), "app.run(" not in text,
          "config_flags.DEFINE_config_file(\"config\", \"" not in text)
  assert found == {f"{m}.py": (True, True, True)
                   for m in ("main", "palette", "flops", "latency_table", "study")}


def _parse(argv: list[str], default_file: str | None = None) -> None:
  fv = flags.FlagValues()
  flag_errors.define_config_file("config", default_file, "config", flag_values=fv,
                                 sys_argv=argv)
  flags.DEFINE_string("workdir", None, "workdir", flag_values=fv)
  flag_errors.parse(argv, fv)


@pytest.mark.parametrize("override,line", [
    ("train.bogus=3", BOGUS),
    ("palette.nmae=x", "error: --config.palette.nmae: no config key palette.nmae; nearest: "
                       "palette.name, palette.compare, palette.index (every key is listed in "
                       "configs/default.py)"),
    ("trian.steps=3", "error: --config.trian.steps: no config key trian; nearest: train "
                      "(every key is listed in configs/default.py)"),
    ("train.step=3", "error: --config.train.step: no config key train.step; nearest: "
                     "train.steps (every key is listed in configs/default.py)"),
    ("train.steps.x=3", "error: --config.train.steps.x: train.steps is a value, not a "
                        "section; nearest: train.steps (every key is listed in "
                        "configs/default.py)"),
])
def test_palette_s_saved_config_names_the_key(tmp_path, capsys, override, line):
  config = default.get_config()
  with config.unlocked():
    config.palette.name = ""  # a saved run has its keys, whatever they are
  (tmp_path / saved_config.FILE).write_text(config.to_json_best_effort())
  argv = ["palette", f"--config={saved_config.__file__}:{tmp_path}",
          f"--workdir={tmp_path}", f"--config.{override}"]
  with pytest.raises(SystemExit) as e:
    _parse(argv)
  assert e.value.code == 1
  assert capsys.readouterr() == ("", line + "\n")


def test_a_default_config_file_names_the_key_at_definition(capsys):
  # study's --config defaults to configs/study.py: ml_collections applies the overrides
  # when the flag is defined.
  with pytest.raises(SystemExit) as e:
    _parse(["study", "--workdir=w", "--config.train.bogus=3"], "configs/study.py")
  assert e.value.code == 1
  assert capsys.readouterr() == ("", BOGUS + "\n")


def test_known_keys_parse_and_other_flag_errors_stay_absl_s(capsys):
  fv = flags.FlagValues()
  argv = ["main", "--config=configs/demo.py", "--config.train.steps=7"]
  flag_errors.define_config_file("config", None, "config", flag_values=fv, sys_argv=argv)
  assert flag_errors.parse(argv, fv) == ["main"]
  assert fv.config.train.steps == 7
  assert flag_errors.unknown_key_line(argv, fv) is None
  fv = flags.FlagValues()
  argv = ["main", "--config=configs/demo.py", "--config.train.steps=abc"]
  flag_errors.define_config_file("config", None, "config", flag_values=fv, sys_argv=argv)
  with pytest.raises(SystemExit):
    flag_errors.parse(argv, fv)
  assert capsys.readouterr().err.startswith(
      "FATAL Flags parsing error: flag --config.train.steps=abc: invalid literal for int()")

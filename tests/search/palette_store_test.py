"""Palette folders: names, the swap that replaces a palette only once it has finished,
and how export, finetune and the Python API find one (no JAX, no training)."""

from __future__ import annotations

import json
import os

import ml_collections
import pytest

from tofa_jax.search import palette_store as store


def _pc(**kw) -> ml_collections.ConfigDict:
  base = {"method": "rule", "metric": "mflops", "budgets": (), "num_budgets": 4, "name": ""}
  return ml_collections.ConfigDict({**base, **kw})


def _write(workdir, name: str, created: str, files=("palette.json",)) -> str:
  with store.staged(str(workdir), name) as (tmp, final):
    for f in files:
      with open(os.path.join(tmp, f), "w") as fh:
        json.dump({"name": name, "created": created, "models": []}, fh)
  return final


def test_default_names_and_bad_names():
  assert store.name(_pc()) == "rule-mflops-n4"
  assert store.name(_pc(method="regnas", budgets=(150, 300.0, 600.5))) == (
      "regnas-mflops-150_300_600.5")
  assert store.name(_pc(metric="params", budgets=(2e6,))) == "rule-params-2e06"
  assert store.name(_pc(name="my_run-2.b")) == "my_run-2.b"
  for bad in ("../x", "a/b", ".hidden", "x" * 101, "sp ace"):
    with pytest.raises(ValueError, match=r"^palette.name=.*: use 1 to 100 letters, digits, "
                                         r"'\.', '_' or '-', starting with a letter or digit$"):
      store.name(_pc(name=bad))


def test_a_rerun_replaces_only_its_own_folder_and_only_once_finished(tmp_path):
  a = _write(tmp_path, "a", "2026-01-01T00:00:00+00:00", ("palette.json", "old.txt"))
  b = _write(tmp_path, "b", "2026-01-02T00:00:00+00:00")
  b_before = (tmp_path / "palettes" / "b" / "palette.json").read_text()
  # A run that fails part-way leaves the old palette whole and no temporary folder.
  with pytest.raises(RuntimeError, match="interrupted"), store.staged(
      str(tmp_path), "a") as (tmp, final):
    assert final == a and os.path.dirname(tmp) == os.path.dirname(a) and tmp != a
    with open(os.path.join(tmp, "palette.json"), "w") as f:
      f.write("{}")
    assert sorted(os.listdir(a)) == ["old.txt", "palette.json"]  # untouched meanwhile
    raise RuntimeError("interrupted")
  assert sorted(os.listdir(a)) == ["old.txt", "palette.json"]
  assert sorted(os.listdir(tmp_path / "palettes")) == ["a", "b"]
  # A finished re-run replaces a, file for file; b is as it was.
  _write(tmp_path, "a", "2026-01-03T00:00:00+00:00")
  assert sorted(os.listdir(a)) == ["palette.json"]
  assert sorted(os.listdir(tmp_path / "palettes")) == ["a", "b"]
  assert (tmp_path / "palettes" / "b" / "palette.json").read_text() == b_before
  assert b == str(tmp_path / "palettes" / "b")


def test_find_by_name_newest_folder_file_and_legacy(tmp_path):
  _write(tmp_path, "b", "2026-01-01T00:00:00+00:00")
  _write(tmp_path, "a", "2026-01-02T00:00:00+00:00")  # newer, though sorted first by name
  os.makedirs(tmp_path / "palettes" / ".a.tmp-123")  # a crashed run's leftovers: not listed
  w = str(tmp_path)
  pj = lambda n: os.path.join(w, "palettes", n, "palette.json")  # noqa: E731
  assert [n for n, _ in store.listing(w)] == ["b", "a"]
  assert store.find("", w) == store.find(w) == pj("a")  # the newest
  assert store.find("b", w) == store.find(os.path.dirname(pj("b"))) == pj("b")
  assert store.find(pj("b")) == pj("b") == store.find(pj("b"), w)
  with pytest.raises(ValueError, match=r"^--palette='c': no such palette in .*; its palettes: "
                                       r"\['a', 'b'\]$"):
    store.find("c", w)
  with pytest.raises(ValueError, match=r"^--workdir=.*/empty: no palette in .*/empty/palettes; "
                                       r"make one with python -m tofa_jax.palette$"):
    os.makedirs(tmp_path / "empty")
    store.find("", str(tmp_path / "empty"))
  with pytest.raises(ValueError, match=r"^--palette or --workdir is required"):
    store.find("", "")
  with pytest.raises(ValueError, match=r"^--palette=b: no such file or folder; a palette's "
                                       r"name needs --workdir=DIR$"):
    store.find("b")
  # A workdir from before palette names: its one palette/ reads as 'palette'.
  old = tmp_path / "old"
  os.makedirs(old / "palette")
  (old / "palette" / "palette.json").write_text(json.dumps({"models": []}))
  assert store.listing(str(old)) == [("palette", str(old / "palette" / "palette.json"))]
  assert store.find("", str(old)) == store.find("palette", str(old)) == str(
      old / "palette" / "palette.json")

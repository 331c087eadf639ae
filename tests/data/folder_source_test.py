"""Bad data in folder datasets: unreadable, truncated and empty image files, empty class
folders, and `data.bad_images` ('stop' or 'skip')."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
from PIL import Image

from tofa_jax.data import datasets, image_files, input_pipeline, loading

SKIP_HINT = "set data.bad_images='skip' to leave such files out"


def _image(path, seed: int = 0, size=(40, 32)) -> str:
  """A noisy RGB image (noise keeps a JPEG long enough to cut) saved by its extension."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  rng = np.random.default_rng(seed)
  Image.fromarray(rng.integers(0, 256, (*size, 3), np.uint8)).save(path)
  return str(path)


def _truncate(path: str) -> None:
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:len(data) // 2])


def _pil_error(path: str) -> str:
  """PIL's own message for a damaged file, read independently of image_files."""
  try:
    with Image.open(path) as img:
      img.load()
  except OSError as e:
    return str(e)
  raise AssertionError(f"{path} decodes")


def _folder(root, per_class=(("cat", 3), ("dog", 2))) -> dict[str, list[str]]:
  """root/<class>/<i>.jpg|png; returns each class's paths in sorted order."""
  files = {}
  for c, n in per_class:
    files[c] = [_image(root / c / f"{i}.{'png' if i % 2 else 'jpg'}", seed=10 * len(files) + i)
                for i in range(n)]
  return files


def _damage(root) -> dict[str, str]:
  """A truncated JPEG, a text file named .jpg and an empty .png, in sorted path order."""
  half = _image(root / "cat" / "a_half.jpg", seed=99)
  _truncate(half)
  text = str(root / "cat" / "b_text.jpg")
  with open(text, "w") as f:
    f.write("not an image\n")
  empty = str(root / "dog" / "c_empty.png")
  open(empty, "wb").close()
  return {half: _pil_error(half), text: "not an image format PIL reads",
          empty: "empty file (0 bytes)"}


@pytest.mark.parametrize("damage", ["truncated_jpeg", "truncated_png", "text_as_jpg",
                                    "zero_byte_png"])
def test_a_bad_file_stops_with_one_line_naming_it(tmp_path, damage):
  _folder(tmp_path)
  ext = "png" if "png" in damage else "jpg"
  path = str(tmp_path / "dog" / f"bad.{ext}")
  if damage.startswith("truncated"):
    _image(path, seed=7)
    _truncate(path)
    reason = _pil_error(path)
    assert reason.startswith("image file is truncated")
  elif damage == "text_as_jpg":
    with open(path, "w") as f:
      f.write("hello\n")
    reason = "not an image format PIL reads"
  else:
    open(path, "wb").close()
    reason = "empty file (0 bytes)"
  with pytest.raises(ValueError) as e:
    datasets.FolderSource(str(tmp_path))
  assert str(e.value) == (f"data.folder={tmp_path}: bad image {path} ({reason}); fix or "
                          f"remove it, or {SKIP_HINT}")


def test_several_bad_files_are_all_named(tmp_path):
  _folder(tmp_path)
  bad = _damage(tmp_path)
  (first, reason), *rest = bad.items()
  with pytest.raises(ValueError) as e:
    datasets.FolderSource(str(tmp_path))
  assert str(e.value) == (f"data.folder={tmp_path}: 3 bad images, the first {first} "
                          f"({reason}), then {', '.join(p for p, _ in rest)}; fix or remove "
                          f"them, or {SKIP_HINT}")


def test_skip_leaves_out_exactly_the_bad_files_and_prints_one_line(tmp_path, capsys):
  good = _folder(tmp_path)
  bad = _damage(tmp_path)
  src = datasets.FolderSource(str(tmp_path), bad_images="skip")
  assert capsys.readouterr().out == (
      f"data.folder={tmp_path}: skipped 3 bad images of 8 (data.bad_images='skip'): "
      f"{', '.join(bad)}\n")
  assert src.files == [(p, 0) for p in good["cat"]] + [(p, 1) for p in good["dog"]]
  assert src.labels.tolist() == [0, 0, 0, 1, 1] and src.classes == ["cat", "dog"]
  for i, (path, label) in enumerate(src.files):
    with Image.open(path) as img:
      np.testing.assert_array_equal(src[i]["image"], np.asarray(img.convert("RGB")))
    assert src[i]["label"] == label


def test_many_bad_files_are_listed_in_a_file(tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the list file's folder
  root = tmp_path / "data"
  _folder(root)
  bad = []
  for i in range(5):
    bad.append(str(root / "dog" / f"z{i}.jpg"))
    open(bad[-1], "wb").close()
  src = datasets.FolderSource(str(root), bad_images="skip")
  line = capsys.readouterr().out
  assert line.startswith(f"data.folder={root}: skipped 5 bad images of 10 "
                         f"(data.bad_images='skip'): {', '.join(bad[:3])}, ...; all listed in ")
  assert line.count("\n") == 1 and len(src) == 5
  listed = line.split("all listed in ")[1].strip()
  assert os.path.dirname(listed) == str(tmp_path)
  with open(listed) as f:
    assert f.read() == "".join(f"{p}\tempty file (0 bytes)\n" for p in bad)
  with pytest.raises(ValueError) as e:
    datasets.FolderSource(str(root))
  assert str(e.value) == (f"data.folder={root}: 5 bad images, the first {bad[0]} (empty "
                          f"file (0 bytes)), all listed in {listed}; fix or remove them, or "
                          f"{SKIP_HINT}")


def test_empty_class_folders_are_named(tmp_path):
  _folder(tmp_path)
  os.makedirs(tmp_path / "emu")
  with open(tmp_path / "emu" / "notes.txt", "w") as f:
    f.write("no images here\n")
  want = (f"data.folder={tmp_path}: class folder {tmp_path / 'emu'} has no images "
          f"({', '.join(image_files.IMAGE_EXTENSIONS)}); add images or remove the folder")
  with pytest.raises(ValueError) as e:
    datasets.FolderSource(str(tmp_path))
  assert str(e.value) == want


def test_a_class_left_empty_by_skipping_is_named(tmp_path, capsys):
  _folder(tmp_path)
  os.makedirs(tmp_path / "emu")
  open(tmp_path / "emu" / "0.jpg", "wb").close()
  with pytest.raises(ValueError) as e:
    datasets.FolderSource(str(tmp_path), bad_images="skip")
  assert str(e.value) == (f"data.folder={tmp_path}: class folder {tmp_path / 'emu'} has no "
                          "readable images once bad ones are skipped; add images or remove "
                          "the folder")
  assert "skipped 1 bad image of 6" in capsys.readouterr().out


def test_test_and_unlabelled_folders(tmp_path):
  _folder(tmp_path / "train")
  _folder(tmp_path / "test", (("dog", 1),))  # a test folder may lack a class
  cfg = {"name": "folder", "folder": str(tmp_path / "train"),
         "test_folder": str(tmp_path / "test")}
  test = datasets.load(cfg, "test")
  assert (test.classes, test.labels.tolist()) == (["cat", "dog"], [1])
  os.makedirs(tmp_path / "test" / "cat")
  with pytest.raises(ValueError) as e:
    datasets.load(cfg, "test")
  assert str(e.value).startswith(f"data.test_folder={tmp_path / 'test'}: class folder "
                                 f"{tmp_path / 'test' / 'cat'} has no images (")
  os.rmdir(tmp_path / "test" / "cat")
  os.makedirs(tmp_path / "test" / "emu")
  with pytest.raises(ValueError) as e:
    datasets.load(cfg, "test")
  assert str(e.value) == (f"data.test_folder={tmp_path / 'test'}: class folder "
                          f"{tmp_path / 'test' / 'emu'} is not one of data.folder's 2 classes; "
                          "rename or remove it")
  os.makedirs(tmp_path / "unl" / "sub")
  with pytest.raises(ValueError, match=r"^data.unlabelled_folder=.*unl: no images \("):
    datasets.FolderSource(str(tmp_path / "unl"), labelled=False, key="data.unlabelled_folder")
  _image(tmp_path / "unl" / "sub" / "0.png")
  path = tmp_path / "unl" / "1.jpg"
  open(path, "wb").close()
  with pytest.raises(ValueError) as e:
    datasets.FolderSource(str(tmp_path / "unl"), labelled=False, key="data.unlabelled_folder")
  assert str(e.value).startswith(f"data.unlabelled_folder={tmp_path / 'unl'}: bad image {path} ")
  with pytest.raises(ValueError) as e:
    datasets.FolderSource(str(tmp_path / "unl"), bad_images="halt")
  assert str(e.value) == "data.bad_images='halt'; choose one of ['stop', 'skip']"


def test_hidden_entries_are_neither_classes_nor_images(tmp_path):
  _folder(tmp_path)
  os.makedirs(tmp_path / ".ipynb_checkpoints")
  with open(tmp_path / "cat" / "._0.jpg", "wb") as f:  # a macOS resource fork
    f.write(b"\x00\x05\x16\x07")
  src = datasets.FolderSource(str(tmp_path))
  assert (src.classes, len(src)) == (["cat", "dog"], 5)


def test_a_file_damaged_after_loading_stops_the_stream_with_one_line(tmp_path):
  good = _folder(tmp_path, (("cat", 2), ("dog", 2)))
  src = datasets.FolderSource(str(tmp_path))
  open(good["dog"][0], "wb").close()
  stream = input_pipeline.train_stream(src, np.arange(4), 4, 8, seed=0, threads=2)
  with pytest.raises(ValueError) as e:  # raised in one of grain's threads
    next(stream)
  assert str(e.value) == (f"bad image {good['dog'][0]} (empty file (0 bytes)), found while "
                          "reading though it decoded when the data was loaded; restore or "
                          "remove it")


def test_load_data_stops_before_training_at_a_bad_file(tmp_path, capsys):
  from helpers.configs import tiny_config

  _folder(tmp_path / "train")
  _folder(tmp_path / "test")
  path = tmp_path / "train" / "dog" / "9.jpg"
  with open(path, "w") as f:
    f.write("<html>not found</html>\n")
  config = tiny_config(**{"data.name": "folder", "data.folder": str(tmp_path / "train"),
                          "data.test_folder": str(tmp_path / "test"), "data.num_labelled": 0})
  with pytest.raises(ValueError) as e:
    loading.load_data(config)
  assert str(e.value) == (f"data.folder={tmp_path / 'train'}: bad image {path} (not an image "
                          f"format PIL reads); fix or remove it, or {SKIP_HINT}")
  config.data.bad_images = "skip"
  data = loading.load_data(config)
  assert (len(data.train), len(data.test), data.num_classes) == (5, 5, 2)
  assert capsys.readouterr().out.count("skipped 1 bad image of 6") == 1

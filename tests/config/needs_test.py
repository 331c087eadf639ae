"""Optional packages are checked before any data loads: a start that needs torch, a
download that needs gdown, a data source, the palette's runtime and the export
formats each stop with one line naming the key and the pip install to run."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys

import pytest

from helpers.configs import tiny_config
from helpers.paths import ROOT
from tofa_jax.config import validate
from tofa_jax.runtime import extras
from tofa_jax.weights import named_starts, torch_file

TORCH_LINE = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"


def _block(monkeypatch, *modules: str) -> None:
  """Makes `modules` uninstalled for this test: find_spec finds None, import fails."""
  for m in modules:
    monkeypatch.setitem(sys.modules, m, None)


@pytest.mark.parametrize("feature", sorted(extras.EXTRAS))
def test_every_extra_is_installed_here_and_its_absence_is_one_line(feature, monkeypatch):
  extra = extras.EXTRAS[feature]
  # The test install holds every extra: a misspelt module name would never be found.
  assert [m for m in extra.modules if importlib.util.find_spec(m) is None] == []
  assert extras.message(feature, "KEY") is None
  _block(monkeypatch, extra.modules[-1])
  assert extras.message(feature, "KEY") == (
      f"KEY needs {extra.modules[-1]} ({extra.does}), which is not installed; {extra.pip}")


def test_a_pth_start_without_torch_stops_validation(tmp_path, monkeypatch):
  pth = tmp_path / "start.pth"
  pth.write_bytes(b"")
  config = tiny_config()
  config.init.checkpoint, config.init.format = str(pth), "efficientnet_lite"
  validate.training(config)
  _block(monkeypatch, "torch")
  with pytest.raises(ValueError) as e:
    validate.training(config)
  assert str(e.value) == (f"init.checkpoint='{pth}' needs torch (reads PyTorch checkpoints), "
                          f"which is not installed; {TORCH_LINE}")
  with pytest.raises(ValueError) as e:  # python -m tofa_jax.convert_torch says the same
    torch_file.load_state_dict(str(pth))
  assert str(e.value) == (f"--src={pth} needs torch (reads PyTorch checkpoints), which is not "
                          f"installed; {TORCH_LINE}")


def test_a_download_without_gdown_and_a_source_without_its_package(tmp_path, monkeypatch):
  monkeypatch.setenv(named_starts.CACHE_ENV, str(tmp_path))
  config = importlib.import_module("configs.aircraft").get_config()
  config.init.download = True
  validate.training(config)  # the file would be fetched
  _block(monkeypatch, "gdown")
  with pytest.raises(ValueError) as e:
    validate.training(config)
  assert str(e.value) == ("init.checkpoint='alphanet' with init.download=True needs gdown "
                          "(downloads the named starts), which is not installed; pip install "
                          "gdown")
  (tmp_path / named_starts.NAMED["alphanet"].file).write_bytes(b"")
  validate.training(config)  # in the cache: nothing to download
  _block(monkeypatch, "tensorflow_datasets")
  with pytest.raises(ValueError) as e:
    validate.training(config)
  assert str(e.value) == ("data.name='aircraft' needs tensorflow_datasets (reads TFDS datasets), "
                          "which is not installed; pip install tensorflow-datasets")


def test_the_palette_checks_its_runtime_and_figures(monkeypatch):
  config = tiny_config()
  config.palette.latency_runtime = "tflite"
  validate.palette(config)
  _block(monkeypatch, "ai_edge_litert")
  with pytest.raises(ValueError) as e:
    validate.palette(config)
  assert str(e.value) == ("palette.latency_runtime='tflite' needs ai_edge_litert (converts to "
                          "and runs LiteRT), which is not installed; pip install -e '.[export]'")
  config.palette.latency_runtime = "jax"
  validate.palette(config)
  _block(monkeypatch, "matplotlib")
  with pytest.raises(ValueError, match=r"^python -m tofa_jax.palette \(its figures\) needs "
                                       r"matplotlib .*; pip install matplotlib$"):
    validate.palette(config)


def test_main_without_torch_stops_in_one_line_before_loading_data(tmp_path):
  pth = tmp_path / "start.pth"
  pth.write_bytes(b"")
  driver = tmp_path / "driver.py"
  driver.write_text(
      "import sys\n"
      "sys.modules['torch'] = None  # as if torch were not installed\n"
      "from tofa_jax.data import loading\n"
      "def load_data(config):\n"
      "  print('DATA LOADED', flush=True)\n"
      "  raise SystemExit(3)\n"
      "loading.load_data = load_data\n"
      "from absl import app\n"
      "from tofa_jax import main\n"
      "app.run(main.main)\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=f"{ROOT}:{ROOT}/tests")
  r = subprocess.run([sys.executable, str(driver), "--config=tests/helpers/tiny_run_config.py",
                      f"--workdir={tmp_path / 'run'}", f"--config.init.checkpoint={pth}",
                      "--config.init.format=efficientnet_lite"],
                     capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
  assert r.returncode == 1, r.stderr[-2000:]
  assert r.stderr.strip().splitlines()[-1] == (
      f"error: init.checkpoint='{pth}' needs torch (reads PyTorch checkpoints), which is not "
      f"installed; {TORCH_LINE}"), r.stderr[-2000:]
  assert "Traceback" not in r.stderr and "DATA LOADED" not in r.stdout
  assert not os.path.exists(tmp_path / "run")  # nothing was written either


def test_export_checks_its_format_before_reading_the_palette(monkeypatch, tmp_path):
  from tofa_jax.search import deployed

  _block(monkeypatch, "jax2onnx")
  with pytest.raises(ValueError) as e:
    deployed.export_palette(str(tmp_path / "no_palette.json"), "onnx")
  assert str(e.value) == ("--format=onnx needs jax2onnx (converts to and runs ONNX), which is not "
                          "installed; pip install -e '.[export]'")


def test_prepare_data_without_tensorflow_stops_before_downloading(tmp_path):
  driver = tmp_path / "driver.py"
  driver.write_text("import sys\n"
                    "sys.modules['tensorflow'] = None  # as if tensorflow were not installed\n"
                    "from absl import app\n"
                    "from tofa_jax import prepare_data\n"
                    "app.run(prepare_data.main)\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  r = subprocess.run([sys.executable, str(driver), "--dataset=aircraft",
                      f"--data_dir={tmp_path / 'tfds'}"],
                     capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
  assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == (
      "error: python -m tofa_jax.prepare_data needs tensorflow (encodes images while preparing "
      "a TFDS dataset), which is not installed; pip install -e '.[prepare]'"), r.stderr[-2000:]
  assert not os.path.exists(tmp_path / "tfds")

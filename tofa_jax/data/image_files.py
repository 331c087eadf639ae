"""The image files of a folder dataset: which files and class folders count, a check
that every file decodes, and what happens to the ones that do not (`data.bad_images`).

Every file is decoded once when the source is built (JPEGs at 1/8 scale, which still
reads every byte of the entropy-coded data and so catches truncation; in threads), so
a bad file stops the run, or is left out, before training starts and the same way on
every host. Measured on 2 shared CPU cores: 2.4 ms per 1000x700 JPEG on one thread (a full
decode to RGB, as training reads it: 12 ms), 1.2 ms on two; about 25 s on one core for
FGVC-Aircraft's 10,000 images, less with more cores. `Image.verify()` alone takes 0.1 ms
but misses truncated JPEGs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

BAD_IMAGE_POLICIES = ("stop", "skip")  # data.bad_images
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
NAMED_IN_LINE = 3  # bad paths named in the message; more go to a list file
_SKIP_HINT = "set data.bad_images='skip' to leave such files out"


def is_visible(name: str) -> bool:
  """Hidden entries (.ipynb_checkpoints, macOS's ._x.jpg) are no classes or images."""
  return not name.startswith(".")


def class_folders(root: str) -> list[str]:
  """The class sub-folders of `root`, sorted by name."""
  return sorted(d for d in os.listdir(root)
                if is_visible(d) and os.path.isdir(os.path.join(root, d)))


def image_names(folder: str) -> list[str]:
  """The image files directly in `folder` (by extension), sorted by name."""
  return sorted(f for f in os.listdir(folder) if is_visible(f)
                and f.lower().endswith(IMAGE_EXTENSIONS)
                and os.path.isfile(os.path.join(folder, f)))


def image_tree(root: str) -> list[str]:
  """The image files anywhere under `root`, in sorted walk order."""
  paths = []
  for dirpath, dirnames, _ in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if is_visible(d))  # prunes the walk
    paths.extend(os.path.join(dirpath, f) for f in image_names(dirpath))
  return paths


def _reason(e: Exception) -> str:
  from PIL import UnidentifiedImageError

  if isinstance(e, UnidentifiedImageError):
    return "not an image format PIL reads"
  if isinstance(e, OSError) and e.strerror:  # its str() repeats the path
    return e.strerror
  return str(e) or type(e).__name__


def decode_errors():
  """The exceptions that mean an image file cannot be decoded."""
  from PIL import Image

  return OSError, SyntaxError, ValueError, Image.DecompressionBombError


def check(path: str) -> str | None:
  """Why the image at `path` does not decode, or None if it does."""
  from PIL import Image

  try:
    if os.path.getsize(path) == 0:
      return "empty file (0 bytes)"
    with Image.open(path) as img:
      img.draft("RGB", (max(1, img.size[0] // 8), max(1, img.size[1] // 8)))  # JPEG only
      img.load()
      img.convert("RGB")
  except decode_errors() as e:
    return _reason(e)
  return None


def find_bad(paths: Sequence[str], threads: int | None = None) -> list[tuple[str, str]]:
  """(path, reason) of every file of `paths` that does not decode, in the given order."""
  threads = threads or min(16, os.cpu_count() or 1)
  with ThreadPoolExecutor(threads) as pool:  # PIL decodes without the GIL
    reasons = list(pool.map(check, paths))
  return [(p, r) for p, r in zip(paths, reasons, strict=True) if r is not None]


def _list_file(root: str, bad: list[tuple[str, str]]) -> str:
  """Writes every bad path and its reason, one a line, to a file named after `root`."""
  digest = hashlib.sha1(os.path.abspath(root).encode()).hexdigest()[:10]
  path = os.path.join(tempfile.gettempdir(), f"tofa_jax_bad_images_{digest}.txt")
  with open(path, "w") as f:
    f.writelines(f"{p}\t{r}\n" for p, r in bad)
  return path


def _named(root: str, bad: list[tuple[str, str]]) -> str:
  """Every bad path for a one-line message: in the line if few, else the first few and
  a list file."""
  paths = [p for p, _ in bad]
  if len(bad) <= NAMED_IN_LINE:
    return ", ".join(paths)
  return f"{', '.join(paths[:NAMED_IN_LINE])}, ...; all listed in {_list_file(root, bad)}"


def keep_good(files: list[tuple[str, int]], policy: str, key: str, root: str,
              threads: int | None = None) -> list[tuple[str, int]]:
  """`files` ((path, label) pairs) without the bad ones, under `data.bad_images`.

  'stop' raises a one-line ValueError naming the first bad file, its reason and the
  others; 'skip' prints one line with their count and paths.
  """
  if policy not in BAD_IMAGE_POLICIES:
    raise ValueError(f"data.bad_images={policy!r}; choose one of {list(BAD_IMAGE_POLICIES)}")
  bad = find_bad([p for p, _ in files], threads)
  if not bad:
    return files
  if policy == "stop":
    path, reason = bad[0]
    if len(bad) == 1:
      raise ValueError(f"{key}={root}: bad image {path} ({reason}); fix or remove it, or "
                       f"{_SKIP_HINT}")
    rest = (f"then {', '.join(p for p, _ in bad[1:])}" if len(bad) <= NAMED_IN_LINE + 1
            else f"all listed in {_list_file(root, bad)}")
    raise ValueError(f"{key}={root}: {len(bad)} bad images, the first {path} ({reason}), "
                     f"{rest}; fix or remove them, or {_SKIP_HINT}")
  _say(f"{key}={root}: skipped {len(bad)} bad image{'s' * (len(bad) > 1)} of {len(files)} "
       f"(data.bad_images='skip'): {_named(root, bad)}")
  dropped = {p for p, _ in bad}
  return [(p, label) for p, label in files if p not in dropped]


def _say(text: str) -> None:
  """A line for the user, from process 0 only (every process checks the same files)."""
  import jax

  if jax.process_index() == 0:
    print(text, flush=True)

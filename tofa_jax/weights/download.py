"""Fetching a named start's file, and its checksum.

`fetch(path, url=..., drive_id=...)` downloads with gdown (Google Drive ids and
plain URLs, with its progress bar) into a temporary folder beside `path`. When the
download is a zip or tar archive that holds a file named like `path` (AlphaNet's
Drive file may bundle its supernet with other models), only that file is kept;
otherwise the download is the file itself (a `.pth` saved by torch is a zip too,
with its own `data.pkl`, and is taken whole). The file reaches `path` by a rename,
so an interrupted download never leaves a partial file under the final name.

`sha256(path)` is the digest a run records (`train/run_identity.py`). A start whose
publisher gives a digest, or its prefix as torchvision's file names do, is checked
against it after the download.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import zipfile

CHUNK = 1 << 20


def drive_page(drive_id: str) -> str:
  """The Google Drive page a user opens to fetch file `drive_id` by hand."""
  return f"https://drive.google.com/file/d/{drive_id}/view"


def sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(CHUNK), b""):
      digest.update(block)
  return digest.hexdigest()


def fetch(path: str, url: str = "", drive_id: str = "", known_sha256: str = "") -> str:
  """Downloads the file for `path` from `url` or Google Drive id `drive_id`; returns
  its SHA-256. Raises a one-line ValueError when the download fails, holds no such
  file, or differs from `known_sha256` (a full digest or a prefix)."""
  import gdown

  where = drive_page(drive_id) if drive_id else url
  by_hand = f"fetch it by hand from {where} to {path}"
  directory = os.path.dirname(path) or "."
  os.makedirs(directory, exist_ok=True)
  print(f"downloading {where} to {path} ...", flush=True)
  work = tempfile.mkdtemp(dir=directory, prefix=".download-")
  try:
    got = os.path.join(work, "download")
    try:
      if drive_id:
        gdown.download(id=drive_id, output=got, quiet=False)
      else:
        gdown.download(url=url, output=got, quiet=False)
    except Exception as e:  # noqa: BLE001 - gdown's and requests' error types vary by version
      why = (str(e).strip().splitlines() or [type(e).__name__])[0]
      raise ValueError(f"init.download: fetching {where} failed ({why}); {by_hand}") from None
    if not os.path.isfile(got):  # gdown < 5 returns None instead of raising
      raise ValueError(f"init.download: fetching {where} failed (nothing was written); "
                       f"{by_hand}")
    found = _unpack(got, path, work, where)
    digest = sha256(found)
    if known_sha256 and not digest.startswith(known_sha256):
      raise ValueError(f"init.download: {where} has SHA-256 {digest}, not the published "
                       f"{known_sha256}; {by_hand}")
    os.replace(found, path)
    return digest
  finally:
    shutil.rmtree(work, ignore_errors=True)


def _unpack(got: str, path: str, work: str, where: str) -> str:
  """The file named like `path` inside archive `got` (extracted into `work`), or `got`
  itself when it is no archive of files."""
  if zipfile.is_zipfile(got):
    with zipfile.ZipFile(got) as z:
      members = [m for m in z.namelist() if not m.endswith("/")]
      if any(os.path.basename(m) == "data.pkl" for m in members):
        return got  # torch.save's own zip format: the checkpoint itself
      member = _pick(members, path, where)
      with z.open(member) as src:
        return _write(src, work)
  if tarfile.is_tarfile(got):
    with tarfile.open(got) as t:
      files = {m.name: m for m in t.getmembers() if m.isfile()}
      if {"pickle", "storages"} <= {os.path.basename(n) for n in files}:
        return got  # torch's legacy tar format: the checkpoint itself
      src = t.extractfile(files[_pick(list(files), path, where)])
      return _write(src, work)
  return got


def _pick(members: list[str], path: str, where: str) -> str:
  name = os.path.basename(path)
  matches = sorted(m for m in members if os.path.basename(m) == name)
  if not matches:
    held = sorted(os.path.basename(m) for m in members)
    raise ValueError(f"init.download: the archive from {where} holds no {name} (it holds "
                     f"{held[:12]}{' ...' if len(held) > 12 else ''}); put {name} at {path} "
                     "by hand")
  return matches[0]


def _write(src, work: str) -> str:
  out = os.path.join(work, "member")
  with open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, CHUNK)
  return out

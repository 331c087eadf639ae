"""A palette's members as deployed files, checked on the run's own data.

`export_palette(palette_json, fmt, ...)` converts each member's static model
(`export_dir` in palette.json) to ONNX (`model.onnx`, batch free) or LiteRT
(`model.tflite`, batch 1; with `int8`, also `model_int8.tflite`, post-training
integer quantisation calibrated on `calibration_images` training images at the
member's resolution, eval preprocessing). With `evaluate`, each file is run in
its runtime over the run's test split, preprocessed exactly as the palette's
evaluator does (resize, centre crop, then the member's normalisation), and
its top-1 is written beside the recorded JAX top-1: palette.json gains
`exports` per member, palette.csv a `top1_<format>` column. For int8 the
report also gives the top-1 agreement between the int8 and float models
(reported, not asserted).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import jax
import numpy as np

from tofa_jax.data import augment, loading
from tofa_jax.deploy import onnx_export, runtimes, tflite_export
from tofa_jax.runtime import extras, saved_config
from tofa_jax.search import palette_report
from tofa_jax.search.subnet_eval import stacked_split
from tofa_jax.weights import export

FORMATS = ("onnx", "tflite")


def _members(palette_json: str) -> tuple[dict, list[dict]]:
  report, members = palette_report.read(palette_json)
  for m in members:
    static_dir = m.get("export_dir")
    if not static_dir or not os.path.isdir(static_dir):
      raise ValueError(f"--palette={palette_json}: member {m.get('member')} has no static "
                       f"model directory ({static_dir!r}); run the palette with "
                       "palette.export=True")
  return report, members


class _RunData:
  """The run's test split and calibration images, loaded once, per resolution."""

  def __init__(self, report: dict, palette_json: str):
    workdir = report.get("workdir", "")
    try:
      self.config = saved_config.get_config(workdir)
    except ValueError as e:
      raise ValueError(f"--palette={palette_json}: its run's config cannot be read ({e}); "
                       "pass --evaluate=false to export without the check") from None
    self.data = loading.load_data(self.config)
    self.batch = int(self.config.evals.batch_size)
    self._test: dict[int, tuple] = {}  # decoded once per resolution, for every member and file
    self._normalize = jax.jit(lambda x, m, s: augment.normalize(augment.to_float(x), m, s))

  def normalized(self, images: np.ndarray, static) -> np.ndarray:
    mean, std = np.asarray(static.mean, np.float32), np.asarray(static.std, np.float32)
    return np.asarray(self._normalize(images, mean, std))

  def test(self, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if resolution not in self._test:
      self._test[resolution] = stacked_split(self.data.test, np.arange(len(self.data.test)),
                                             resolution, self.batch)
    return self._test[resolution]

  def calibration(self, static, n: int) -> np.ndarray:
    if n < 1:
      raise ValueError(f"--calibration_images={n}; use at least 1")
    pool = np.random.default_rng(int(self.config.seed)).permutation(self.data.labelled_idx)
    idx = pool[:n]
    images, _, _ = stacked_split(self.data.train, idx, static.arch.resolution, len(idx))
    return self.normalized(images[0], static)


def _predict(run: Callable[[np.ndarray], np.ndarray], data: _RunData, static, batch_one: bool
             ) -> tuple[np.ndarray, np.ndarray]:
  images, labels, mask = data.test(static.arch.resolution)
  preds = []
  for b in images:
    x = data.normalized(b, static)
    logits = (np.concatenate([run(x[i:i + 1]) for i in range(len(x))]) if batch_one
              else run(x))
    preds.append(np.argmax(logits, -1))
  keep = mask > 0
  return np.concatenate(preds)[keep], labels[keep]


def export_palette(palette_json: str, fmt: str, int8: bool = False, evaluate: bool = True,
                   calibration_images: int = 100, threads: int = 1, log=print) -> list[dict]:
  """Writes each member's file(s); returns per member {format: {path, top1, ...}}."""
  if fmt not in FORMATS:
    raise ValueError(f"--format={fmt!r} is unknown; choose one of {list(FORMATS)}")
  if int8 and fmt != "tflite":
    raise ValueError(f"--int8 applies to --format=tflite, not {fmt!r}")
  extras.require(extras.BY_RUNTIME[fmt], f"--format={fmt}")  # before any member is read
  report, members = _members(palette_json)
  statics = []  # every member is read before any file is written
  for m in members:
    try:
      statics.append(export.load(m["export_dir"]))
    except (ValueError, OSError, KeyError) as e:
      raise ValueError(f"--palette={palette_json}: member {m.get('member')} "
                       f"({m['export_dir']}): {e}") from None
  data = _RunData(report, palette_json) if evaluate or int8 else None
  results = []
  for m, static in zip(members, statics, strict=True):
    out: dict[str, dict] = {}
    if fmt == "onnx":
      path = onnx_export.convert_member(m["export_dir"])
      out["onnx"] = {"path": path}
      sessions = {"onnx": (runtimes.onnx_session(_read(path), threads), False)}
    else:
      path = tflite_export.convert_member(m["export_dir"])
      out["tflite"] = {"path": path}
      sessions = {"tflite": (runtimes.tflite_session(_read(path), threads), True)}
      if int8:
        path = tflite_export.convert_member(m["export_dir"],
                                            data.calibration(static, calibration_images))
        out["tflite_int8"] = {"path": path, "calibration_images": calibration_images}
        sessions["tflite_int8"] = (runtimes.tflite_session(_read(path), threads), True)
    for name in out:
      log(f"wrote {out[name]['path']}")
    if evaluate:
      preds = {}
      for name, (sess, batch_one) in sessions.items():
        preds[name], labels = _predict(sess, data, static, batch_one)
        out[name]["top1"] = float(np.mean(preds[name] == labels))
      if int8:
        out["tflite_int8"]["agreement_with_float"] = float(
            np.mean(preds["tflite_int8"] == preds["tflite"]))
      log(f"member {m['member']}: top-1 " + ", ".join(
          [f"jax {m.get('top1', float('nan')):.6f}"] +
          [f"{n} {o['top1']:.6f}" for n, o in out.items()]) +
          ("" if not int8 else
           f"; int8 agrees with float on {100 * out['tflite_int8']['agreement_with_float']:.2f}%"
           " of the test images"))
    m.setdefault("exports", {}).update(out)
    results.append(out)
  tmp = f"{palette_json}.tmp"  # a crash mid-write leaves the old report whole
  with open(tmp, "w") as f:
    json.dump(report, f, indent=1)
  os.replace(tmp, palette_json)
  palette_report.write_csv(os.path.dirname(palette_json), report)
  return results


def _read(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()

"""A converted model run in one runtime with a fixed thread count.

`session(runtime, fn, hwc, threads)` converts `fn(images[B, H, W, C]) -> logits`
for `runtime` and returns a `Session`, a callable from a NumPy batch to NumPy
logits:

  jax          `jax.jit(fn)` on the current backend. XLA's CPU thread pool is
               set when the backend starts, so `threads` is not applied; the
               session records None.
  onnxruntime  jax2onnx, then an ONNX Runtime CPU session with
               intra_op_num_threads=threads, one inter-op thread, sequential
               execution and every graph optimisation.
  tflite       jax2tf and the TFLite converter, then the LiteRT interpreter
               (`ai_edge_litert`) with num_threads=threads and its default
               XNNPACK delegate. LiteRT models have a fixed batch
               (`tflite_export`), so each batch size is converted on first use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

RUNTIMES = ("jax", "onnxruntime", "tflite")


@dataclasses.dataclass
class Session:
  runtime: str
  threads: int | None  # None: the runtime's own default (jax)
  run: Callable[[np.ndarray], np.ndarray]

  def __call__(self, images: np.ndarray) -> np.ndarray:
    return self.run(np.ascontiguousarray(images, np.float32))


def check(runtime: str, key: str = "palette.latency_runtime") -> str:
  if runtime not in RUNTIMES:
    raise ValueError(f"{key}={runtime!r} is unknown; choose one of {list(RUNTIMES)}")
  return runtime


def onnx_session(model: bytes, threads: int) -> Session:
  import onnxruntime as ort

  opts = ort.SessionOptions()
  opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
  opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
  opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
  opts.log_severity_level = 3
  sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
  return Session("onnxruntime", threads, lambda x: sess.run(["logits"], {"images": x})[0])


def tflite_session(model: bytes, threads: int) -> Session:
  """A session for one fixed-batch LiteRT flatbuffer."""
  from ai_edge_litert.interpreter import Interpreter

  interp = Interpreter(model_content=model, num_threads=threads)
  interp.allocate_tensors()
  inp, out = interp.get_input_details()[0], interp.get_output_details()[0]

  def run(x: np.ndarray) -> np.ndarray:
    if tuple(inp["shape"]) != x.shape:
      raise ValueError(f"this LiteRT model takes images of shape {tuple(inp['shape'])}, "
                       f"not {x.shape}")
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return interp.get_tensor(out["index"]).copy()

  return Session("tflite", threads, run)


def _tflite_per_batch(fn: Callable, hwc: tuple[int, int, int], threads: int) -> Session:
  from tofa_jax.deploy import tflite_export

  per_batch: dict[int, Session] = {}

  def run(x: np.ndarray) -> np.ndarray:
    if x.shape[0] not in per_batch:
      per_batch[x.shape[0]] = tflite_session(tflite_export.to_bytes(fn, hwc, batch=x.shape[0]),
                                             threads)
    return per_batch[x.shape[0]](x)

  return Session("tflite", threads, run)


def session(runtime: str, fn: Callable, hwc: tuple[int, int, int], threads: int = 1,
            name: str = "tofa") -> Session:
  """`fn` converted for `runtime` and loaded with `threads` threads."""
  check(runtime)
  if threads < 1:
    raise ValueError(f"palette.latency_threads={threads}; use at least 1")
  if runtime == "jax":
    jitted = jax.jit(fn)
    return Session("jax", None, lambda x: np.asarray(jitted(x)))
  if runtime == "onnxruntime":
    from tofa_jax.deploy import onnx_export

    return onnx_session(onnx_export.to_bytes(fn, hwc, name), threads)
  return _tflite_per_batch(fn, hwc, threads)

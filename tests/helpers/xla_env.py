"""The test session's XLA settings, shared with the subprocesses that tests start.

`tests/conftest.py` puts `TEST_XLA_FLAGS` in `XLA_FLAGS` before JAX starts its backend
(`TOFA_TEST_XLA_FLAGS` overrides them: empty runs the tests with XLA's defaults), and
`CACHE_DIR` is the session's persistent compilation cache (`TOFA_TEST_XLA_CACHE`
overrides it, so one checkout's runs can keep their own). A subprocess adds its flags
to the session's with `xla_flags(...)` rather than replacing them: it then compiles
with the same backend settings as the parent, so its results compare like with like,
and it keeps the cheaper compile.
"""

from __future__ import annotations

import os
import tempfile

# Cheaper compiles, every assertion intact. XLA's HLO passes (fusion, layout, buffer
# assignment) run as in production; what this cuts is LLVM's optimisation of the
# emitted kernels, most of a CPU compile. The kernels run slower (the tiny max subnet's
# forward+backward at batch 4: about 10x), but a test compiles far more than it runs:
# `loop_test::test_smoke_on_bundled_digits` (3 steps, then an evaluation), cold, took
# 70 CPU seconds against 98 with XLA's defaults (85 at level 1), and the tiny train
# step's compile (`XLA_FLAGS=... python benchmarks/compile_programs.py
# --config=tests/helpers/tiny_run_config.py --threads=1`) 43 against 66 CPU seconds.
# `--xla_llvm_disable_expensive_passes` saved nothing. Results move by float rounding
# only (the tiny step's loss and gradients by at most 3e-6), which every test's
# tolerance covers; tests that compare two programs exactly compile both with these
# flags, subprocesses included.
TEST_XLA_FLAGS = tuple(os.environ.get("TOFA_TEST_XLA_FLAGS",
                                      "--xla_backend_optimization_level=0").split())

CACHE_DIR = (os.environ.get("TOFA_TEST_XLA_CACHE")
             or os.path.join(tempfile.gettempdir(), "tofa_jax_test_xla_cache"))


def xla_flags(*flags: str) -> str:
  """`XLA_FLAGS` for a subprocess: this process's flags, then `flags`."""
  return " ".join([*os.environ.get("XLA_FLAGS", "").split(), *flags])


def install() -> None:
  """Adds `TEST_XLA_FLAGS` to this process's `XLA_FLAGS` (once); call before JAX's
  backend starts, which reads them."""
  have = os.environ.get("XLA_FLAGS", "").split()
  os.environ["XLA_FLAGS"] = " ".join([*have, *(f for f in TEST_XLA_FLAGS if f not in have)])

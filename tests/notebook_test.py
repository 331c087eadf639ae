"""The Colab notebook: its commands name real modules and config keys, its Python parses,
its Colab and network cells sit behind its flags, and offline it runs end to end."""

import ast
import json
import os
import re
import shlex
import sys
import types

import pytest

from configs import default
from helpers.paths import ROOT

NOTEBOOK = os.path.join(ROOT, "notebooks", "tofa_colab.ipynb")

# What CI runs: no Colab, no network, and a demo small enough for the whole notebook to
# take about 3 minutes on 2 CPU cores, most of it compiling the train step (the tiny_lite
# space from scratch at one resolution, 4 steps; a 2-member palette by the rule alone; one
# member through the Python API and its smallest through `predict`). The test puts these in
# a cell after the "parameters" cell, as papermill does.
CI_PARAMETERS = {
    "ON_COLAB": False,
    "ONLINE": False,
    "DEMO_STEPS": 4,
    "DEMO_FLAGS": ("--config.model.space=tiny_lite --config.init.checkpoint=random "
                   "--config.init.format='' '--config.model.resolutions=(32,)' "
                   "--config.train.batch_size=8 --config.train.unlabelled_batch_size=8 "
                   "--config.evals.bn_images=64 --config.jax_cache_dir='' "
                   "--config.optim.warmup_epochs=0"),
    "PALETTE_FLAGS": ("--config.palette.num_budgets=2 '--config.palette.compare=()' "
                      "--config.palette.latency_repeats=3 --config.palette.latency_batch=4"),
}
# Lines that need Colab or the network; each must sit under `if ON_COLAB` or `if ONLINE`.
_GUARDED = re.compile(r"pip install|\bgit\b|nvidia-smi|prepare_data|/flowers\b")


def _notebook() -> dict:
  with open(NOTEBOOK) as f:
    return json.load(f)


def _cells():
  return [("".join(c["source"]), c["cell_type"]) for c in _notebook()["cells"]]


def _code_lines(src: str) -> list[str]:
  return src.replace("\\\n", " ").splitlines()


def _parameters(**overrides) -> dict:
  """The parameters cell's values (it is plain Python), then `overrides`."""
  cell = next(c for c in _notebook()["cells"] if "parameters" in c["metadata"].get("tags", ()))
  values: dict = {}
  exec("".join(cell["source"]), values)  # the repository's own cell, plain assignments
  values.update(overrides)
  return values


def _shell_commands(values: dict) -> list[list[str]]:
  """argv of every `!` line, with IPython's `{NAME}` interpolations of parameters made."""
  out = []
  for src, kind in _cells():
    if kind != "code":
      continue
    for cmd in _code_lines(src):
      cmd = cmd.strip()
      if cmd.startswith("!"):
        cmd = re.sub(r"\{(\w+)\}",
                     lambda m: str(values[m[1]]) if m[1] in values else m[0], cmd[1:])
        out.append(shlex.split(cmd))
  return out


def _as_python(src: str) -> str:
  # IPython's ! and % lines (with their \ continuations) become `pass`.
  return "\n".join(ln[:len(ln) - len(ln.lstrip())] + "pass"
                   if ln.lstrip().startswith(("!", "%")) else ln for ln in _code_lines(src))


def test_python_cells_parse():
  for src, kind in _cells():
    if kind == "code":
      ast.parse(_as_python(src))


def test_saved_without_outputs():
  for cell in _notebook()["cells"]:
    if cell["cell_type"] == "code":
      assert cell["outputs"] == [] and cell["execution_count"] is None, cell["source"][:2]


def test_the_first_code_cell_holds_the_parameters_and_colab_keeps_its_defaults(monkeypatch):
  code = [c for c in _notebook()["cells"] if c["cell_type"] == "code"]
  assert code[0]["metadata"].get("tags") == ["parameters"]
  assert all("parameters" not in c["metadata"].get("tags", ()) for c in code[1:])
  # Every value CI overrides is one the cell defines.
  assert set(CI_PARAMETERS) | {"REPO_DIR", "RUNS_DIR", "TFDS_DIR"} <= set(_parameters())
  # On Colab every section runs, in /content, with the demo's 100 steps as they are.
  monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
  colab = _parameters()
  assert colab["ON_COLAB"] and colab["ONLINE"]
  assert (colab["REPO_DIR"], colab["RUNS_DIR"]) == ("/content/tofa_jax", "/content/runs")
  assert (colab["DEMO_STEPS"], colab["DEMO_FLAGS"], colab["PALETTE_FLAGS"]) == (100, "", "")
  monkeypatch.delitem(sys.modules, "google.colab")
  assert not _parameters()["ON_COLAB"]


def test_colab_and_network_lines_sit_behind_a_flag():
  guarded = 0
  for src, kind in _cells():
    if kind != "code":
      continue
    lines = _code_lines(src)
    for i, line in enumerate(lines):
      if not _GUARDED.search(line) or line.lstrip().startswith("#"):
        continue
      # The headers of the blocks around the line: each nearer line above with less
      # indentation than the last.
      headers, indent = [], len(line) - len(line.lstrip())
      for above in reversed(lines[:i]):
        if above.strip() and len(above) - len(above.lstrip()) < indent:
          headers.append(above.strip())
          indent = len(above) - len(above.lstrip())
      assert any(re.match(r"if (ON_COLAB|ONLINE)\b", h) for h in headers), line
      guarded += 1
  assert guarded >= 8  # clone, two installs, CUDA JAX, prepare, flowers run/palettes/plots


@pytest.mark.parametrize("overrides", [{}, CI_PARAMETERS], ids=["defaults", "ci"])
def test_commands_use_existing_modules_configs_and_keys(overrides):
  cfg = default.get_config()
  values = _parameters(**overrides)
  # Every {NAME} a command interpolates is a parameter or set before it: IPython passes
  # an unknown one to the shell as it is.
  assigned = set(values)
  for src, kind in _cells():
    if kind == "code":
      lines = _code_lines(src)
      for i, line in enumerate(lines):
        if line.lstrip().startswith(("!", "%")):
          before = {m[1] for m in map(re.compile(r"\s*(\w+)\s*=[^=]").match, lines[:i]) if m}
          for name in re.findall(r"\{(\w+)\}", line):
            assert name in assigned | before, name
      assigned |= {n.id for n in ast.walk(ast.parse(_as_python(src)))
                   if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
  modules = set()
  for argv in _shell_commands(values):
    if argv[:2] != ["python", "-m"]:
      continue
    module = argv[2]
    modules.add(module)
    assert os.path.isfile(os.path.join(ROOT, *module.split(".")) + ".py"), module
    for arg in argv[3:]:
      if arg.startswith("--config="):
        assert os.path.isfile(os.path.join(ROOT, arg.split("=", 1)[1])), arg
      elif arg.startswith("--config."):
        node = cfg
        for part in arg.split("=", 1)[0][len("--config."):].split("."):
          assert part in node, arg
          node = node[part]
      else:
        assert arg.startswith("--"), arg  # flags only: a stray word is a quoting slip
  assert {"tofa_jax.main", "tofa_jax.palette", "tofa_jax.prepare_data",
          "tofa_jax.predict"} <= modules
  assert any(re.search(r"flowers", " ".join(a)) for a in _shell_commands(values))


def _kernel_manager(tmp_path):
  """A kernel running this interpreter, whatever kernelspecs the machine has installed."""
  from jupyter_client.kernelspec import KernelSpecManager
  from jupyter_client.manager import AsyncKernelManager

  spec = tmp_path / "kernels" / "python3"
  spec.mkdir(parents=True)
  (spec / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "Python 3", "language": "python"}))
  specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
  return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs)


def _text(cell) -> str:
  out = []
  for o in cell["outputs"]:
    if o["output_type"] == "stream":
      out.append(o["text"])
    elif "data" in o:
      out.append(o["data"].get("text/plain", ""))
  return "".join(out).replace("\r\n", "\n")  # `!` output comes through a terminal


@pytest.mark.heavy(90)
def test_runs_offline_end_to_end(tmp_path):
  import nbformat
  from nbclient import NotebookClient

  runs = tmp_path / "runs"
  nb = nbformat.read(NOTEBOOK, as_version=4)
  at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", ()))
  values = {**CI_PARAMETERS, "REPO_DIR": ROOT, "RUNS_DIR": str(runs),
            "TFDS_DIR": str(tmp_path / "tfds")}
  nb.cells.insert(at + 1, nbformat.NotebookNode(
      cell_type="code", execution_count=None, outputs=[],
      metadata={"tags": ["injected-parameters"]},
      source="\n".join(f"{k} = {v!r}" for k, v in values.items())))
  # `!python` is this interpreter; JAX stays on the CPU.
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]))
  env.pop("JAX_COMPILATION_CACHE_DIR", None)  # compiled cold, as in a fresh CI
  client = NotebookClient(nb, km=_kernel_manager(tmp_path), timeout=900,
                          resources={"metadata": {"path": ROOT}})
  try:
    client.execute(env=env)  # raises on the first cell that raises
  finally:
    nbformat.write(nb, str(tmp_path / "executed.ipynb"))  # to read when it fails

  def output_of(snippet: str) -> str:
    return _text(next(c for c in nb.cells if c.cell_type == "code" and snippet in c.source))

  # `!` commands do not raise when they fail: their printed errors are the evidence.
  for cell in nb.cells:
    if cell.cell_type == "code":
      text = _text(cell)
      assert "Traceback" not in text and not re.search(r"^error:", text, re.M), text[-3000:]
      # JAX starts threads: the kernel, which forks every `!` command, must not import it.
      assert "os.fork()" not in text, text[-3000:]
  assert re.search(r"^\d+\.\d+\.\d+ \[CpuDevice", output_of("jax.devices()"), re.M)
  assert "final top1_max" in output_of("tofa_jax.main --config=configs/demo.py")
  assert "wrote " in output_of("tofa_jax.palette --workdir={RUNS_DIR}/demo")
  palette = runs / "demo" / "palettes" / "demo"  # --config.palette.name=demo
  assert sorted(os.listdir(runs / "demo" / "palettes")) == ["demo"]  # no temporary left
  with open(palette / "palette.json") as f:
    members = json.load(f)["models"]
  assert len(members) >= 1
  assert len((palette / "palette.csv").read_text().strip().splitlines()) == len(members) + 1
  table = output_of('pd.read_csv(f"{RUNS_DIR}/demo/palettes/demo/palette.csv")')
  assert "latency_ms_b1" in table and "nfr_from_smaller" in table
  shown = [o for o in next(c for c in nb.cells if "accuracy_vs_mflops.png" in c.source).outputs
           if "image/png" in o.get("data", {})]
  assert len(shown) == 3
  for png in ("accuracy_vs_mflops.png", "accuracy_vs_latency.png", "nfr_heatmap.png"):
    assert (palette / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
  # Nothing of section 2 ran: no download, no flowers run.
  assert not (tmp_path / "tfds").exists() and not (runs / "flowers").exists()
  _check_python_api(output_of("tofa_jax.Palette.load"), palette, members)
  # `rank. name (class i) p=...`: the demo's classes are named "0".."9".
  ranked = re.findall(r"^(\d)\. (.+) \(class (\d+)\) p=([0-9.]+)$",
                      output_of("tofa_jax.predict"), re.M)
  assert [int(r) for r, _, _, _ in ranked] == [1, 2, 3, 4, 5]
  assert all(name == c for _, name, c, _ in ranked)
  probs = [float(p) for _, _, _, p in ranked]
  assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
  assert len({c for _, _, c, _ in ranked}) == 5


def _check_python_api(text: str, palette, members: list[dict]) -> None:
  """The Python API cell: the member `member_for` picked is the largest within the budget
  it printed, and its top-3 for the first 4 test digits are ranked and named."""
  from tofa_jax.data import datasets

  m = re.search(r"^budget ([0-9.]+) MFLOPs -> Member\((.+)/member_(\d\d), (\d+) px, "
                r"([0-9.]+) MFLOPs, classes: 10\)$", text, re.M)
  assert m, text
  assert m[2] == str(palette / "models")
  mflops = sorted(r["mflops"] for r in members)
  budget = (mflops[0] + mflops[-1]) / 2  # the cell's budget
  assert float(m[1]) == pytest.approx(budget, rel=1e-3)
  chosen = max((r for r in members if r["mflops"] <= budget),
               key=lambda r: (r["mflops"], r["member"]))
  assert (int(m[3]), float(m[5])) == (chosen["member"], pytest.approx(chosen["mflops"]))
  rows = re.findall(r"^true (\d), top-3: (\d) p=([0-9.]+), (\d) p=([0-9.]+), (\d) p=([0-9.]+)$",
                    text, re.M)
  test = datasets.bundled("digits", "test")
  assert [int(r[0]) for r in rows] == list(test.labels[:4])
  for r in rows:
    assert len(set(r[1::2])) == 3
    probs = [float(p) for p in r[2::2]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001

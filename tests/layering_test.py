"""The package's layers: imports run one way, no circles, small documented modules,
and every entry point answers --help."""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import pytest

from helpers.paths import ROOT

# Bottom to top; a module may import from its own layer or any layer before it.
LAYERS = ("runtime", "space", "model", "cost", "weights", "deploy", "data", "train", "search",
          "config", "reproduce", "api")
TOP = len(LAYERS)  # modules directly in tofa_jax/: the thin entry points
ENTRY_POINTS = {  # module: a flag its --help must list
    "main": "--workdir", "palette": "--workdir", "flops": "--arch",
    "convert_torch": "--format", "predict": "--image", "prepare_data": "--dataset",
    "export": "--palette", "latency_table": "--out", "finetune": "--palette",
    "study": "--quick",
}
MAX_LINES = 400
NO_JAX = {"space": ("jax", "flax", "optax", "orbax")}  # plain Python and NumPy only


def _module_name(package_root: pathlib.Path, path: pathlib.Path) -> str:
  parts = path.relative_to(package_root.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, modules: set[str]) -> list[tuple[str, int]]:
  """(imported module, line) for every import of a known module, function-level ones too."""
  out = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out += [(a.name, node.lineno) for a in node.names if a.name in modules]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for a in node.names:
        sub = f"{node.module}.{a.name}"
        if sub in modules:  # `from pkg import module`
          out.append((sub, node.lineno))
        elif node.module in modules:
          out.append((node.module, node.lineno))
  return out


def _layer(module: str) -> int:
  parts = module.split(".")
  if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS):
    return LAYERS.index(parts[1])
  return TOP if len(parts) == 2 else -1  # the root package's own __init__: below all


def check_layers(package_root: pathlib.Path) -> list[str]:
  """Problems of the package at `package_root`: upward imports, circles, files outside
  a layer. Each names the files involved."""
  paths = {_module_name(package_root, p): p for p in sorted(package_root.rglob("*.py"))}
  modules = set(paths)
  problems, graph = [], {}
  for name, path in paths.items():
    parts = name.split(".")
    if len(parts) > 2 and parts[1] not in LAYERS:
      problems.append(f"{path}: package {parts[1]!r} is not a layer; layers: {list(LAYERS)}")
      continue
    graph[name] = set()
    for target, line in _imports(ast.parse(path.read_text()), modules):
      if target in (name, package_root.name):
        continue
      graph[name].add(target)
      if _layer(target) > _layer(name):
        problems.append(f"{path}:{line} imports {paths[target]}, a layer above it")
  problems += [" -> ".join(str(paths[m]) for m in cycle) for cycle in _cycles(graph)]
  return problems


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """One circle per strongly connected component that has one (Tarjan)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v: str) -> None:
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph.get(v, ()):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1 or v in graph.get(v, ()):
        out.append(_path_through(graph, sorted(component)))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def _path_through(graph: dict[str, set[str]], component: list[str]) -> list[str]:
  """A closed walk start -> ... -> start inside one strongly connected component."""
  start, inside = component[0], set(component)
  parents, frontier = {start: None}, [start]
  while frontier:
    nxt = []
    for v in frontier:
      for w in sorted(graph.get(v, ())):
        if w == start:
          path = [v]
          while parents[path[-1]] is not None:
            path.append(parents[path[-1]])
          return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
        if w in inside and w not in parents:
          parents[w] = v
          nxt.append(w)
    frontier = nxt
  return component


PACKAGE = pathlib.Path(ROOT) / "tofa_jax"


def test_imports_run_one_way_without_circles():
  assert check_layers(PACKAGE) == []


def test_checker_names_upward_imports_and_circles(tmp_path):
  pkg = tmp_path / "tofa_jax"
  files = {
      "__init__.py": "",
      "space/__init__.py": "",
      "space/a.py": "from tofa_jax.space import b\n",
      "space/b.py": "from tofa_jax.space import c\n",
      "space/c.py": "def f():\n  from tofa_jax.space import a\n",  # a local import counts
      "model/__init__.py": "",
      "model/m.py": "from tofa_jax.space.a import x\n",
      "train/__init__.py": "",
      "train/t.py": "import tofa_jax.model.m\n",
      "cost/k.py": "from tofa_jax.train import t\n",  # upward
      "tools/x.py": "",  # not a layer
  }
  for rel, text in files.items():
    (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
    (pkg / rel).write_text(text)
  problems = check_layers(pkg)
  assert f"{pkg}/cost/k.py:1 imports {pkg}/train/t.py, a layer above it" in problems
  assert (f"{pkg}/space/a.py -> {pkg}/space/b.py -> {pkg}/space/c.py -> {pkg}/space/a.py"
          in problems)
  assert any(p.startswith(f"{pkg}/tools/x.py: package 'tools' is not a layer") for p in problems)
  assert len(problems) == 3


def test_layer_packages_and_modules_are_small_and_documented():
  layers = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
  assert layers == sorted(LAYERS)
  for path in sorted(PACKAGE.rglob("*.py")):
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{path} has no module docstring"
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path} has {n} lines (at most {MAX_LINES})"
    layer = path.relative_to(PACKAGE).parts[0]
    for node in ast.walk(tree):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
               [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
      for name in names:
        assert name.split(".")[0] not in NO_JAX.get(layer, ()), f"{path} imports {name}"


@pytest.mark.parametrize("module", sorted(ENTRY_POINTS))
def test_entry_point_help(module):
  r = subprocess.run([sys.executable, "-m", f"tofa_jax.{module}", "--help"],
                     capture_output=True, text=True, cwd=ROOT, timeout=300,
                     env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT))
  assert "Traceback" not in r.stderr, r.stderr
  assert r.returncode in (0, 1), r.stderr  # absl's --help exits 1 after printing
  assert f"tofa_jax.{module}" in r.stdout and ENTRY_POINTS[module] in r.stdout, r.stdout


def test_import_tofa_jax_stays_cheap_and_the_api_loads_on_first_use():
  code = ("import sys, tofa_jax; print('jax' in sys.modules); "
          "print(tofa_jax.Palette.__module__, tofa_jax.load_member.__module__); "
          "print('jax' in sys.modules); print(sorted(tofa_jax.__all__))")
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                     env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT, timeout=300)
  assert r.stdout.splitlines() == ["False", "tofa_jax.api.palette tofa_jax.api.member", "True",
                                   "['Member', 'Palette', 'load_member']"], r.stderr

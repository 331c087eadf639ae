"""The Colab notebook's commands name real modules and config keys, and its Python parses."""

import ast
import json
import os
import re
import shlex

from configs import default
from helpers.paths import ROOT

NOTEBOOK = os.path.join(ROOT, "notebooks", "tofa_colab.ipynb")


def _cells():
  with open(NOTEBOOK) as f:
    nb = json.load(f)
  return [("".join(c["source"]), c["cell_type"]) for c in nb["cells"]]


def _shell_commands():
  out = []
  for src, kind in _cells():
    if kind != "code":
      continue
    for cmd in src.replace("\\\n", " ").splitlines():
      cmd = cmd.strip()
      if cmd.startswith("!"):
        out.append(shlex.split(cmd[1:]))
  return out


def test_python_cells_parse():
  for src, kind in _cells():
    if kind == "code":
      # IPython's ! and % lines (with their \ continuations) become `pass`.
      lines = [ln[:len(ln) - len(ln.lstrip())] + "pass"
               if ln.lstrip().startswith(("!", "%")) else ln
               for ln in src.replace("\\\n", " ").splitlines()]
      ast.parse("\n".join(lines))


def test_commands_use_existing_modules_configs_and_keys():
  cfg = default.get_config()
  modules = set()
  for argv in _shell_commands():
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
  assert {"tofa_jax.main", "tofa_jax.palette", "tofa_jax.prepare_data",
          "tofa_jax.predict"} <= modules
  assert any(re.search(r"flowers", " ".join(a)) for a in _shell_commands())

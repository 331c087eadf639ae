"""`run(main)`: absl's `app.run` for the entry points that take a config flag, where an
override of a key the config does not have (`--config.train.bogus=3`) ends the process
with one line naming the key, the nearest known keys and where every key is listed,
instead of ml_collections' traceback ending in `AttributeError: "'bogus'"`.

ml_collections raises while absl parses the flags (a locked ConfigDict's `__getattr__`),
before `main` runs; the raise names only the last part of the key. On that failure the
config is loaded again and each override's path walked until a part is missing. A config
flag with a default file applies the overrides when it is defined: `define_config_file`.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import ml_collections
from absl import app, flags
from ml_collections.config_flags import config_flags  # is_config_flag: not re-exported

KEYS_LISTED_IN = "configs/default.py"
_SECTION = (ml_collections.ConfigDict, Mapping)


def _is_section(x: Any) -> bool:
  return isinstance(x, _SECTION)


def run(main: Callable[[list[str]], Any], argv: Sequence[str] | None = None) -> None:
  """`app.run(main, argv)`, its flags parsed by `parse`."""
  app.run(main, argv=argv, flags_parser=parse)


def parse(argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
  """`flag_values(argv)` as absl's `app.parse_flags_with_usage` does it; an unknown config
  key exits with `unknown_key_line`'s line (status 1)."""
  try:
    return flag_values(list(argv))
  except flags.Error as e:  # absl's own message for a bad flag, as app.run prints it
    sys.stderr.write(f"FATAL Flags parsing error: {e}\n"
                     "Pass --helpshort or --helpfull to see help on flags.\n")
    sys.exit(1)
  except (AttributeError, KeyError) as e:
    line = unknown_key_line(argv, flag_values)
    if line is None:  # not an unknown key: a bug, with its traceback
      raise e from None
    sys.stderr.write(line + "\n")
    sys.exit(1)


def _config_flags(flag_values: flags.FlagValues) -> Iterator[Any]:
  for name in list(flag_values):
    flag = flag_values[name]
    if config_flags.is_config_flag(flag) and flag.name == name:
      yield flag


def _config_argument(argv: Sequence[str], name: str) -> str | None:
  """The value of `--name=FILE` or `--name FILE` in argv (the last one), else None."""
  found = None
  for i, arg in enumerate(argv):
    m = re.match(rf"^--?{re.escape(name)}(=(.*))?$", arg)
    if m:
      found = m.group(2) if m.group(1) else (argv[i + 1] if i + 1 < len(argv) else None)
  return found


def _overrides(argv: Sequence[str], name: str) -> list[str]:
  """The key paths of `--name.a.b=...` (and `--noname.a.b`) in argv, in order."""
  out = []
  for arg in argv:
    m = re.match(rf"^--?(?:no)?{re.escape(name)}\.([^=]+)", arg)
    if m:
      out.append(m.group(1))
  return out


def key_paths(config: Any, prefix: str = "") -> list[str]:
  """Every dotted key of `config`, sections and values."""
  out = []
  for k, v in config.items():
    out.append(prefix + k)
    if _is_section(v):
      out.extend(key_paths(v, prefix + k + "."))
  return out


def first_unknown(config: Any, path: str) -> str | None:
  """The prefix of `path` up to its first part `config` does not have, or None."""
  node, parts = config, path.split(".")
  for i, part in enumerate(parts):
    if not _is_section(node) or part not in node:
      return ".".join(parts[:i + 1])
    node = node[part]
  return None


def nearest(config: Any, unknown: str, n: int = 3) -> list[str]:
  """The known keys closest to `unknown`: among every key, else among its siblings."""
  close = difflib.get_close_matches(unknown, key_paths(config), n=n, cutoff=0.75)
  if close:
    return close
  parent, _, leaf = unknown.rpartition(".")
  node = config
  for part in parent.split(".") if parent else ():
    node = node[part]
  if not _is_section(node):  # a part under a value: the value itself
    return [parent]
  prefix = parent + "." if parent else ""
  return [prefix + k for k in difflib.get_close_matches(leaf, list(node), n=n, cutoff=0.0)]


def describe(config: Any, flag_name: str, path: str) -> str | None:
  """The one line for `--flag_name.path`, or None when every part of it is a key."""
  unknown = first_unknown(config, path)
  if unknown is None:
    return None
  parent = unknown.rpartition(".")[0]
  what = (f"{parent} is a value, not a section" if parent and first_unknown(config, parent)
          is None and not _is_section(_at(config, parent)) else
          f"no config key {unknown}")
  return (f"error: --{flag_name}.{path}: {what}; nearest: {', '.join(nearest(config, unknown))}"
          f" (every key is listed in {KEYS_LISTED_IN})")


def _at(config: Any, path: str) -> Any:
  for part in path.split("."):
    config = config[part]
  return config


def define_config_file(name: str, default: str, help_string: str,
                       flag_values: flags.FlagValues = flags.FLAGS,
                       sys_argv: Sequence[str] | None = None) -> flags.FlagHolder:
  """`DEFINE_config_file(..., lock_config=True)` for a flag with a default file: when the
  command line names no file, ml_collections loads the default and applies the overrides
  (from sys.argv) here, at definition, so an unknown key ends here with the same line."""
  try:
    return config_flags.DEFINE_config_file(name, default, help_string, flag_values=flag_values,
                                           lock_config=True, sys_argv=sys_argv)
  except (AttributeError, KeyError) as e:
    argv = sys.argv if sys_argv is None else sys_argv
    try:
      config = config_flags.ConfigFileFlagParser(name).parse(default)
    except Exception:  # noqa: BLE001 - the original error says more
      config = None
    line = _first_line(config, name, _overrides(argv, name)) if config is not None else None
    if line is None:
      raise e from None
    sys.stderr.write(line + "\n")
    sys.exit(1)


def _first_line(config: Any, flag_name: str, overrides: Sequence[str]) -> str | None:
  for path in overrides:
    line = describe(config, flag_name, path)
    if line is not None:
      return line
  return None


def unknown_key_line(argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS
                     ) -> str | None:
  """The line for the first override in argv of a key its config does not have."""
  for flag in _config_flags(flag_values):
    overrides = _overrides(argv, flag.name)
    if not overrides:
      continue
    argument = _config_argument(argv, flag.name)
    try:  # the error path only: a config file runs a second time
      config = flag.parser.parse(argument) if argument is not None else flag.value
    except Exception:  # noqa: BLE001 - the original error says more
      return None
    if _is_section(config):
      line = _first_line(config, flag.name, overrides)
      if line is not None:
        return line
  return None

"""Value rules: what one config value may be, checked with a one-line message.

A rule's `check(key, value)` raises a ValueError that names the key, shows the
value (one line, shortened) and says what is allowed, in the project's style:

  loss.threshold=1.5 is out of range; allowed: 0 <= loss.threshold <= 1
  palette.method='zz' is unknown; choose one of ['rule', 'evolution', 'random', 'regnas']

`schema.py` maps every config key to one of these rules.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

SECTION_TYPES = (Mapping, ml_collections.ConfigDict, ml_collections.FrozenConfigDict)
MAX_SHOWN = 80  # characters of a value shown in a message


def is_section(value: Any) -> bool:
  return isinstance(value, SECTION_TYPES)


def show(value: Any) -> str:
  """`repr(value)` on one line, at most MAX_SHOWN characters."""
  if is_section(value):
    value = dict(value.items())
  text = " ".join(repr(value).split())
  return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 3] + "..."


def num(x: float) -> str:
  """A bound as people write it: 1 not 1.0, 0.35 not 0.35000000000000003."""
  return f"{x:g}" if isinstance(x, float) else str(x)


def is_int(value: Any) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def finite(x: float) -> bool:
  """math.isfinite without its OverflowError on huge ints (ints are finite)."""
  return is_int(x) or math.isfinite(x)


def fail(key: str, value: Any, problem: str, allowed: str) -> ValueError:
  return ValueError(f"{key}={show(value)} {problem}; allowed: {allowed}")


@dataclasses.dataclass(frozen=True)
class Number:
  """An int (`integer=True`) or a real number inside [lo, hi]; either bound may be
  open or absent. `also` lists special values allowed outside the range (-1 = off)."""

  lo: float | None = None
  hi: float | None = None
  lo_open: bool = False
  hi_open: bool = False
  integer: bool = False
  also: tuple = ()

  def describe(self, key: str) -> str:
    lo = "" if self.lo is None else f"{num(self.lo)} {'<' if self.lo_open else '<='} "
    hi = "" if self.hi is None else f" {'<' if self.hi_open else '<='} {num(self.hi)}"
    if self.lo is not None and self.hi is None:  # "x >= 1" reads better than "1 <= x"
      text = f"{key} {'>' if self.lo_open else '>='} {num(self.lo)}"
    elif self.lo is None and self.hi is None:
      text = f"any finite {'integer' if self.integer else 'number'}"
    else:
      text = f"{lo}{key}{hi}"
    return " or ".join([*(f"{key} == {num(a)}" for a in self.also), text])

  def check(self, key: str, value: Any) -> None:
    if self.integer and not is_int(value):
      raise fail(key, value, "is not an integer", self.describe(key))
    if not self.integer and not is_number(value):
      raise fail(key, value, "is not a number", self.describe(key))
    if value in self.also:
      return
    if not finite(value):
      raise fail(key, value, "is not finite", self.describe(key))
    low_ok = self.lo is None or (value > self.lo if self.lo_open else value >= self.lo)
    high_ok = self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)
    if not (low_ok and high_ok):
      raise fail(key, value, "is out of range", self.describe(key))


def Int(lo: int | None = None, hi: int | None = None, also: tuple = ()) -> Number:  # noqa: N802
  return Number(lo, hi, integer=True, also=also)


@dataclasses.dataclass(frozen=True)
class Bool:
  def check(self, key: str, value: Any) -> None:
    if not isinstance(value, bool):
      raise fail(key, value, "is not a bool", "True or False")


@dataclasses.dataclass(frozen=True)
class Str:
  """A string; `nonempty` forbids ''."""

  nonempty: bool = False

  def check(self, key: str, value: Any) -> None:
    if not isinstance(value, str):
      raise fail(key, value, "is not a string", "a non-empty string" if self.nonempty else
                 "a string")
    if self.nonempty and not value:
      raise fail(key, value, "is empty", "a non-empty string")


@dataclasses.dataclass(frozen=True)
class Pattern:
  """A string that is '' or matches `regex` in full; `what` says what is allowed."""

  regex: Any  # a compiled re.Pattern
  what: str

  def check(self, key: str, value: Any) -> None:
    if not isinstance(value, str):
      raise fail(key, value, "is not a string", self.what)
    if value and not self.regex.fullmatch(value):
      raise fail(key, value, "is not allowed", self.what)


@dataclasses.dataclass(frozen=True)
class Choice:
  """One of `choices` (imported from the layer that uses the key)."""

  choices: tuple

  def check(self, key: str, value: Any) -> None:
    if not any(type(value) is type(c) and value == c for c in self.choices):
      raise ValueError(f"{key}={show(value)} is unknown; choose one of {list(self.choices)}")


@dataclasses.dataclass(frozen=True)
class Nullable:
  """None, or what `rule` allows."""

  rule: Any

  def check(self, key: str, value: Any) -> None:
    if value is not None:
      self.rule.check(key, value)


@dataclasses.dataclass(frozen=True)
class Seq:
  """A tuple or list of items that `item` allows; `sizes` the allowed lengths
  (None: any, empty included); `distinct` forbids repeats."""

  item: Any
  sizes: tuple[int, ...] | None = None
  nonempty: bool = False
  distinct: bool = False
  what: str = ""  # the allowed form, e.g. "() or (lo, hi)"

  def check(self, key: str, value: Any) -> None:
    form = self.what or ("a non-empty tuple" if self.nonempty else "a tuple")
    if not isinstance(value, (tuple, list)):
      raise fail(key, value, "is not a tuple", form)
    if (self.sizes is not None and len(value) not in self.sizes) or (
        self.nonempty and not value):
      raise fail(key, value, f"has {len(value)} entries", form)
    for i, v in enumerate(value):
      self.item.check(f"{key}[{i}]", v)
    if self.distinct and len({repr(v) for v in value}) < len(value):
      raise fail(key, value, "repeats an entry", f"{form}, each entry once")


@dataclasses.dataclass(frozen=True)
class Interval:
  """() when `empty_ok`, or (lo, hi) with bound <= lo <= hi (<= top): a window of
  numbers. `lo_open`: bound < lo."""

  bound: float
  top: float | None = None
  lo_open: bool = False
  empty_ok: bool = False

  def describe(self, key: str) -> str:
    lo = f"{num(self.bound)} {'<' if self.lo_open else '<='} lo <= hi"
    text = f"(lo, hi) with {lo}{'' if self.top is None else f' <= {num(self.top)}'}"
    return f"() or {text}" if self.empty_ok else text

  def check(self, key: str, value: Any) -> None:
    if not isinstance(value, (tuple, list)):
      raise fail(key, value, "is not a tuple", self.describe(key))
    if self.empty_ok and len(value) == 0:
      return
    if len(value) != 2 or not all(is_number(v) for v in value):
      raise fail(key, value, "is not a pair of numbers", self.describe(key))
    lo, hi = value
    if not (finite(lo) and finite(hi)):
      raise fail(key, value, "is not finite", self.describe(key))
    low_ok = lo > self.bound if self.lo_open else lo >= self.bound
    if not (low_ok and lo <= hi and (self.top is None or hi <= self.top)):
      raise fail(key, value, "is out of range", self.describe(key))


@dataclasses.dataclass(frozen=True)
class Section:
  """A mapping whose contents another check reads (model.custom_space)."""

  def check(self, key: str, value: Any) -> None:
    if not is_section(value):
      raise fail(key, value, "is not a mapping", "a dict of the SearchSpace fields")


def check_fields(prefix: str, value: Any, fields: Mapping[str, Any],
                 required: Sequence[str] = ()) -> None:
  """Checks a mapping against a field table: unknown or missing fields and each value."""
  if not is_section(value):
    raise fail(prefix, value, "is not a mapping", f"a dict with keys {sorted(fields)}")
  unknown = sorted(str(k) for k, _ in value.items() if k not in fields)
  if unknown:
    raise ValueError(f"{prefix} has unknown keys {unknown}; allowed: {sorted(fields)}")
  missing = [k for k in required if k not in value]
  if missing:
    raise ValueError(f"{prefix} lacks keys {missing}; required: {list(required)}")
  for k, v in value.items():
    fields[k].check(f"{prefix}.{k}", v)

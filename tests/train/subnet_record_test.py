"""subnets.jsonl after a crash mid-write: damaged lines dropped, the file kept whole aside."""

from __future__ import annotations

import json

from tofa_jax.space import sampling
from tofa_jax.space.search_space import get_space
from tofa_jax.train import subnet_record


def test_a_damaged_log_is_copied_aside_and_its_good_lines_kept(tmp_path):
  space = get_space("tiny")
  a = sampling.min_arch(space)
  path = tmp_path / "subnets.jsonl"
  log = subnet_record.SubnetLog(str(path))
  for step in (1, 2, 3):
    log.append(step, [a])
  good = path.read_text()
  damaged = good.replace('{"step": 2', '{"step": 2\x00\x00', 1) + '{"step": 4, "ar'
  path.write_text(damaged)  # a torn line 2 and a half-written line 4
  warning = log.truncate(3)
  copy = tmp_path / "subnets.jsonl.damaged"
  assert warning == (f"warning: {path}: lines [2, 4] are unreadable and were dropped; the "
                     f"whole file is kept as {copy}")
  assert copy.read_text() == damaged
  assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 3]
  path.write_text(damaged)  # a second damage keeps the first copy too
  log.truncate(3)
  assert (tmp_path / "subnets.jsonl.damaged-2").read_text() == damaged
  assert log.truncate(3) is None  # nothing damaged: no warning, no copy
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      "subnets.jsonl", "subnets.jsonl.damaged", "subnets.jsonl.damaged-2"]

"""memory_maps: the room left under vm.max_map_count, and the loop's early error."""

from __future__ import annotations

import pytest

from helpers.configs import tiny_config
from tofa_jax.runtime import memory_maps
from tofa_jax.train import loop


def test_shortfall_against_ninety_percent_of_the_limit():
  # The measured tofa case: 4 more programs of ~12,500 maps after the first.
  assert memory_maps.shortfall(15_000, 12_500, 4, 65_530) == 65_000 - 58_977
  assert memory_maps.shortfall(15_000, 12_500, 4, 262_144) is None
  assert memory_maps.shortfall(58_977, 0, 0, 65_530) is None  # exactly at the headroom


def test_counts_read_proc():
  assert memory_maps.count() > 0 and memory_maps.limit() > 0


@pytest.mark.heavy(107)
def test_the_loop_stops_at_the_first_compile_when_the_rest_would_not_fit(tmp_path, monkeypatch):
  monkeypatch.setattr(memory_maps, "limit", lambda: 1000)
  # The tiny space's (32, 40): 1 more to come. One subnet a step, no teacher: the
  # smallest program that has a second to compile (the check is the same for any).
  cfg = tiny_config(**{"model.resolutions": (), "train.sampling": "rss_batch",
                       "loss.variant": "lab"})
  with pytest.raises(ValueError, match=r"^the train program \(\d+ px\): each compiled program adds "
                                       r"about \d+ memory maps on the CPU backend, and 1 more "
                                       r"would pass this machine's vm.max_map_count=1000 "):
    loop.train_and_evaluate(cfg, str(tmp_path))
  # One resolution, no teacher: one program, nothing more to compile, nothing to check.
  one = tiny_config(**{"train.sampling": "rss_batch", "loss.variant": "lab"})
  with monkeypatch.context() as m:
    m.setattr(memory_maps, "limit", lambda: 1000)
    assert set(loop.train_and_evaluate(one, str(tmp_path / "one"))) == {"top1_max", "top1_min"}

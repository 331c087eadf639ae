"""device_prefetch.prefetch: order kept, and the source pulled exactly size - 1 ahead."""

from __future__ import annotations

import pytest

from tofa_jax.data import device_prefetch


@pytest.mark.parametrize("size", [1, 2, 3])
def test_yields_in_order_pulling_size_minus_one_ahead(size):
  pulled = []

  def source():
    for i in range(5):
      pulled.append(i)
      yield i

  got = []
  for item in device_prefetch.prefetch(source(), size):
    assert pulled[-1] == min(item + size - 1, 4)  # already produced when item is handed out
    got.append(item)
  assert got == list(range(5))


def test_size_below_one_is_refused():
  with pytest.raises(ValueError, match=r"prefetch size=0; use at least 1"):
    list(device_prefetch.prefetch([1], 0))

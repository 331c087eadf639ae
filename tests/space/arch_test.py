"""Architectures as data: JSON forms, validation errors, deterministic samplers."""

import json

import numpy as np
import pytest

from tofa_jax.space import arch as A
from tofa_jax.space import flops, sampling
from tofa_jax.space.search_space import get_space

# The alphanet space's smallest subnet (203 MFLOPs, AttentiveNAS-A0 size) in the
# published AttentiveNAS/AlphaNet subnet format.
ALPHANET_A0 = {"resolution": 192, "width": [16, 16, 24, 32, 64, 112, 192, 216, 1792],
               "depth": [1, 3, 3, 3, 3, 3, 1], "kernel_size": [3, 3, 3, 3, 3, 3, 3],
               "expand_ratio": [1, 4, 4, 4, 4, 6, 6]}


def test_reads_attentivenas_format():
  sp = get_space("alphanet")
  arch = A.validate(sp, A.Arch.from_dict(ALPHANET_A0))
  assert arch.kernel[1] == (3, 3, 3) and arch.expand[5] == (6.0,) * 3
  assert arch.to_dict() == ALPHANET_A0


@pytest.mark.parametrize("name", ["tofa", "alphanet", "ofa_mbv3", "lite0", "tiny_ofa"])
def test_json_round_trip(name):
  sp = get_space(name)
  for step in range(5):
    arch = sampling.sample_arch(sp, seed=3, step=step)
    text = arch.to_json(sp.per_layer)
    assert A.validate(sp, A.Arch.from_json(text)) == arch
    assert json.loads(text)["resolution"] == arch.resolution


def test_sampling_is_deterministic_in_seed_and_step():
  sp = get_space("ofa_mbv3")
  assert sampling.sample_arch(sp, 1, 7) == sampling.sample_arch(sp, 1, 7)
  draws = {sampling.sample_arch(sp, 1, step) for step in range(20)}
  assert len(draws) == 20
  assert sampling.sample_arch(sp, 1, 7, salt=0) != sampling.sample_arch(sp, 1, 7, salt=1)
  assert sampling.sample_arch(sp, 2, 7) != sampling.sample_arch(sp, 1, 7)


def test_random_sampler_covers_every_choice():
  sp = get_space("tiny_ofa")
  archs = [sampling.random_arch(sp, sampling.rng_for(0, s)) for s in range(300)]
  assert {a.resolution for a in archs} == set(sp.resolutions)
  for s, st in enumerate(sp.stages):
    assert {a.depth[s] for a in archs} == set(st.depths)
    assert {k for a in archs for k in a.kernel[s]} == set(st.kernels)
    assert {e for a in archs for e in a.expand[s]} == set(st.expansions)
  # Per-layer space: layers of one stage choose independently.
  assert any(len(set(a.kernel[2])) > 1 for a in archs)


def test_mflops_window_is_respected():
  sp = get_space("tofa")
  lo, hi = sp.mflops_window
  for step in range(10):
    assert lo <= flops.count(sp, sampling.sample_arch(sp, 0, step)).mflops <= hi
  # Table 1's all-minimum subnet lies below the window; it stays the sandwich min.
  assert flops.count(sp, sampling.min_arch(sp)).mflops < lo


def test_min_and_max():
  sp = get_space("tofa")
  mx, mn = sampling.max_arch(sp), sampling.min_arch(sp)
  assert mx.resolution == 320 and mx.width == (24, 24, 32, 40, 72, 128, 216, 224, 1984)
  assert mx.depth == (2, 5, 6, 6, 8, 8, 2) and mn.depth == (1, 3, 3, 3, 3, 3, 1)
  assert mn.kernel[2] == (3, 3, 3) and mn.expand[1] == (2.0,) * 3


@pytest.mark.parametrize("field,value,message", [
    ("resolution", 100, r"arch.resolution=100 is outside the space; allowed values: "
                        r"\[192, 224, 256, 288\]"),
    ("width", [16, 16, 24, 32, 64, 112, 192, 216, 2000],
     r"arch.width\[8\]=2000 .* allowed values: \[1792, 1984\]"),
    ("depth", [1, 3, 3, 3, 3, 3, 9], r"arch.depth\[6\]=9 .* allowed values: \[1, 2\]"),
    ("kernel_size", [3, 3, 3, 3, 3, 3, 7], r"arch.kernel_size\[6\]\[0\]=7 .* \[3, 5\]"),
    ("expand_ratio", [1, 4, 4, 4, 4, 4, 6], r"arch.expand_ratio\[5\]\[0\]=4 .* \[6\]"),
])
def test_invalid_arch_names_field_and_allowed_values(field, value, message):
  d = {**ALPHANET_A0, field: value}
  with pytest.raises(ValueError, match=message):
    A.validate(get_space("alphanet"), A.Arch.from_dict(d))


def test_structural_errors():
  sp = get_space("alphanet")
  with pytest.raises(ValueError, match="missing fields \\['depth'\\]"):
    A.Arch.from_dict({k: v for k, v in ALPHANET_A0.items() if k != "depth"})
  with pytest.raises(ValueError, match="arch.width has 3 entries; space alphanet needs 9"):
    A.validate(sp, A.Arch.from_dict({**ALPHANET_A0, "width": [16, 16, 24]}))
  per_layer = {**ALPHANET_A0, "kernel_size": [3, [3, 5, 3], 3, 3, 3, 3, 3]}
  with pytest.raises(ValueError, match="varies across layers"):
    A.validate(sp, A.Arch.from_dict(per_layer))
  with pytest.raises(ValueError, match=r"arch.kernel_size\[1\] has 2 entries; stage 1 has depth 3"):
    A.Arch.from_dict({**ALPHANET_A0, "kernel_size": [3, [3, 5], 3, 3, 3, 3, 3]})


def test_to_arrays_pads_inactive_layers():
  sp = get_space("tiny_ofa")
  arch = A.Arch(32, (8, 8, 16, 24, 64), (1, 2, 2), ((3,), (5, 7), (3, 3)),
                ((1.0,), (6.0, 3.0), (3.0, 6.0)))
  arr = A.to_arrays(sp, A.validate(sp, arch))
  assert arr["kernel"].shape == (3, 3) and arr["kernel"].dtype == np.int32
  np.testing.assert_array_equal(arr["kernel"][1], [5, 7, 7])
  np.testing.assert_array_equal(arr["expand"][2], [3.0, 6.0, 6.0])
  np.testing.assert_array_equal(arr["depth"], [1, 2, 2])

"""Search spaces reproduce their papers' tables and reject bad definitions."""

import pytest

from helpers.paths import ROOT
from tofa_jax.space import search_space
from tofa_jax.space.search_space import get_space, make_divisible, space_from_config


def test_tofa_matches_table_1():
  sp = get_space("tofa")
  assert sp.stem_widths == (16, 24)
  rows = [(st.widths, st.depths, st.kernels, st.expansions, st.se) for st in sp.stages]
  assert rows == [
      ((16, 24), (1, 2), (3, 5), (1.0,), False),
      ((24, 32), (3, 4, 5), (3, 5), (2.0, 4.0, 6.0), False),
      ((32, 40), (3, 4, 5, 6), (3, 5), (2.0, 4.0, 6.0), True),
      ((64, 72), (3, 4, 5, 6), (3, 5), (2.0, 4.0, 6.0), False),
      ((112, 128), (3, 4, 5, 6, 7, 8), (3, 5), (2.0, 4.0, 6.0), True),
      ((192, 216), (3, 4, 5, 6, 7, 8), (3, 5), (2.0, 4.0, 6.0), True),
      ((216, 224), (1, 2), (3, 5), (2.0, 4.0, 6.0), True),
  ]
  assert sp.head_widths == (1792, 1984) and sp.head_expand == 6.0
  assert sp.resolutions == (192, 224, 256, 288, 320)
  assert [st.stride for st in sp.stages] == [1, 2, 2, 2, 1, 2, 1]
  assert sp.mflops_window == (200.0, 2500.0) and not sp.per_layer


def test_alphanet_matches_table_7():
  sp = get_space("alphanet")
  assert [st.widths for st in sp.stages] == [
      (16, 24), (24, 32), (32, 40), (64, 72), (112, 128), (192, 200, 208, 216), (216, 224)]
  assert [st.expansions for st in sp.stages][-2:] == [(6.0,), (6.0,)]
  assert [st.se for st in sp.stages] == [False, False, True, False, True, True, True]
  assert {st.act for st in sp.stages} == {"swish"}
  assert sp.resolutions == (192, 224, 256, 288) and sp.shortcut == "attentive"


def test_ofa_mbv3_space():
  sp = get_space("ofa_mbv3")
  elastic = sp.stages[1:]
  assert all(st.kernels == (3, 5, 7) and st.expansions == (3.0, 4.0, 6.0)
             and st.depths == (2, 3, 4) for st in elastic)
  assert [st.widths[0] for st in elastic] == [24, 40, 80, 112, 160]
  assert [st.act for st in elastic] == ["relu", "relu", "hswish", "hswish", "hswish"]
  assert sp.per_layer and sp.shortcut == "identity"


def test_lite0_max_is_efficientnet_lite0():
  sp = get_space("lite0")
  # (expansion, kernel, stride, width, repeats) of EfficientNet-Lite0.
  lite0 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
           (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
  got = [(max(st.expansions), max(st.kernels), st.stride, max(st.widths), max(st.depths))
         for st in sp.stages]
  assert got == lite0
  assert sp.stem_widths == (32,) and sp.head_widths == (1280,) and sp.head == "conv"
  assert {st.act for st in sp.stages} == {"relu6"} and not any(st.se for st in sp.stages)


@pytest.mark.parametrize("v,expected", [(16 * 6, 96), (24 * 2, 48), (20, 24), (13, 16), (3, 8),
                                        (100, 104), (36, 40)])
def test_make_divisible(v, expected):
  assert make_divisible(v, 8) == expected


def test_unknown_space_names_allowed_values():
  with pytest.raises(ValueError, match=r"model.space='nope'.*'tofa'.*'lite0'"):
    get_space("nope")


def test_user_defined_space_from_config():
  cfg = {
      "name": "mine", "stem_widths": [8], "stem_act": "relu", "head_widths": [32],
      "head_act": "relu", "resolutions": [32],
      "stages": [{"widths": [8, 16], "depths": [1, 2], "kernels": [3], "expansions": [2, 3],
                  "stride": 2, "se": True, "act": "hswish"}],
  }
  sp = space_from_config(cfg)
  assert sp.stages[0].widths == (8, 16) and sp.resolutions == (32,)
  with pytest.raises(ValueError, match="space.stages\\[0\\].act='gelu'"):
    space_from_config({**cfg, "stages": [{**cfg["stages"][0], "act": "gelu"}]})
  with pytest.raises(ValueError, match="unknown keys \\['colour'\\]"):
    space_from_config({**cfg, "colour": 1})
  with pytest.raises(ValueError, match="lacks key 'se'"):
    space_from_config({**cfg, "stages": [{k: v for k, v in cfg["stages"][0].items()
                                          if k != "se"}]})


def test_registry_lists_every_space():
  assert set(search_space.SPACE_NAMES) >= {"tofa", "alphanet", "ofa_mbv3", "lite0", "tiny"}


def test_config_selects_space_and_window():
  import importlib.util
  import pathlib

  path = pathlib.Path(ROOT) / "configs" / "custom_space.py"
  spec = importlib.util.spec_from_file_location("custom_space", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  cfg = module.get_config()
  sp = search_space.resolve(cfg.model)
  assert sp.name == "mobile_small" and sp.per_layer and sp.mflops_window is None
  cfg.model.mflops_window = (10, 20)
  assert search_space.resolve(cfg.model).mflops_window == (10.0, 20.0)
  tofa = search_space.resolve({"space": "tofa", "mflops_window": ()})
  assert tofa.mflops_window == (200.0, 2500.0)
  with pytest.raises(ValueError, match="model.space='custom' needs model.custom_space"):
    search_space.resolve({"space": "custom"})

"""Class counts and cost ranges found without reading images, against the loaders and
the palette's own computation."""

from __future__ import annotations

import os

import pytest

from tofa_jax.config import facts
from tofa_jax.cost import cost_model
from tofa_jax.data import datasets
from tofa_jax.space import flops, genome, sampling
from tofa_jax.space.search_space import get_space


@pytest.mark.parametrize("name", datasets.BUNDLED)
def test_bundled_class_counts_match_the_loader(name):
  assert facts.num_classes({"name": name}) == datasets.bundled(name, "test").num_classes


def test_folder_class_count_matches_the_loader(tmp_path):
  from PIL import Image

  for c in ("cat", "dog", "eel"):
    os.makedirs(tmp_path / c)
    Image.new("RGB", (4, 4)).save(tmp_path / c / "x.png")
  os.makedirs(tmp_path / ".ipynb_checkpoints")  # hidden: no class
  (tmp_path / "notes.txt").write_text("not a class")
  cfg = {"name": "folder", "folder": str(tmp_path)}
  assert facts.num_classes(cfg) == datasets.FolderSource(str(tmp_path)).num_classes == 3
  assert facts.num_classes({"name": "folder", "folder": str(tmp_path / "gone")}) is None


def test_an_unprepared_tfds_dataset_has_no_cheap_class_count(tmp_path):
  assert facts.num_classes({"name": "cifar10", "data_dir": str(tmp_path)}) is None
  assert facts.num_classes({"name": "aircraft", "data_dir": str(tmp_path)}) is None
  assert facts.num_classes({"name": "imagenet21k"}) is None
  assert os.listdir(tmp_path) == []  # nothing written


def test_cost_ranges_are_the_palettes():
  space = get_space("tiny_ofa")
  g = genome.Genome(space, (40,))
  low = g.decode([0] * len(g))
  high = g.decode([len(x.choices) - 1 for x in g.genes])
  model = cost_model.CostModel(space, 7)
  for metric in ("mflops", "params", "memory"):
    assert facts.cost_range(space, metric, (40,), 7) == (model(low, metric), model(high, metric))
  assert facts.cost_range(space, "mflops", (40,), None) is None
  assert facts.cost_range(space, "memory", (40,), None) == facts.cost_range(space, "memory",
                                                                             (40,), 7)
  assert facts.cost_range(space, "latency", (40,), 7) is None
  lo, hi = facts.mflops_range(space, 32)
  assert lo == flops.count(space, sampling.min_arch(space)).mflops  # 32 px is tiny_ofa's min
  assert hi < flops.count(space, sampling.max_arch(space)).mflops  # its max is at 40 px

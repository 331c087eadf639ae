"""The study's palette budgets: evenly spaced above the minnet's cost (issue 33).

`palette.num_budgets` spaces its budgets from the smallest subnet's cost to the largest's,
so the lowest budget fits the minnet alone and every method picks it: a forced tie. The
study's comparisons at a budget use `num` budgets evenly spaced over (c_min, c_max]
instead, t_i = c_min + i (c_max - c_min) / num for i = 1..num, passed to the palette as
`palette.budgets` (with `palette.resolutions`, the range's resolutions). The range is the
palette's own: MFLOPs of the min and max subnets at the study's resolutions, within the
space's MFLOPs window.
"""

from __future__ import annotations

import ml_collections

from tofa_jax.config import facts
from tofa_jax.search import selection
from tofa_jax.space import search_space


def above_min(config: ml_collections.ConfigDict, num: int) -> tuple[float, ...]:
  """`num` MFLOPs budgets, each above the minnet's cost, the last the maxnet's."""
  space = search_space.resolve(config.model)
  classes = facts.num_classes(config.data)
  span = facts.cost_range(space, "mflops", tuple(config.model.resolutions), classes)
  if span is None:
    raise ValueError(f"data.name={config.data.name!r}: the study needs the class count "
                     "without loading the data, to place its palette budgets")
  return tuple(selection.budgets((), int(num) + 1, *span, space.mflops_window)[1:])


def palette_keys(config: ml_collections.ConfigDict, num: int) -> tuple[tuple[str, object], ...]:
  """The palette overrides that place `num` budgets above the minnet's cost."""
  return (("palette.budgets", above_min(config, num)),
          ("palette.resolutions", tuple(config.model.resolutions)))

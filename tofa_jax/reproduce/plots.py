"""The study's box plots of subnet populations per MFLOPs bin, one box per training
scheme (RSS Figures 3, 6, 7), with matplotlib's Agg backend; line plots are the
palette's (`search/palette_plots.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def grouped_boxes(bins: Sequence[str], groups: Mapping[str, Sequence[Sequence[float]]],
                  title: str, path: str) -> None:
  """`groups[name][b]`: the top-1 values (fractions) of bin `b` under scheme `name`;
  one box per (bin, scheme), bins along x, schemes side by side in colour."""
  names = list(groups)
  width = 0.8 / max(len(names), 1)
  fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(bins) + 3), 4.5), dpi=120)
  colours = plt.get_cmap("tab10")
  for g, name in enumerate(names):
    data = [100 * np.asarray(v) if len(v) else np.asarray([np.nan]) for v in groups[name]]
    pos = np.arange(len(bins)) + (g - (len(names) - 1) / 2) * width
    box = ax.boxplot(data, positions=pos, widths=0.9 * width, patch_artist=True,
                     manage_ticks=False)
    for patch in box["boxes"]:
      patch.set_facecolor(colours(g % 10))
      patch.set_alpha(0.6)
    ax.plot([], [], color=colours(g % 10), linewidth=6, alpha=0.6, label=name)
  ax.set_xticks(range(len(bins)), bins)
  ax.set_xlabel("MFLOPs bin")
  ax.set_ylabel("test top-1 (%)")
  ax.set_title(title)
  ax.grid(alpha=0.3, axis="y")
  ax.legend(fontsize=8, ncol=2)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)

"""The palette's PNG figures (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_MARKERS = {"rule": "o", "evolution": "s", "random": "^", "regnas": "D", "predictor": "v"}
_NAMES = {"rule": "fixed selection rule (Alg. 2)", "evolution": "evolutionary search",
          "random": "random search", "regnas": "REG-NAS (CAS + reward)",
          "predictor": "evolution + accuracy predictor"}


def accuracy_vs(series: Mapping[str, Sequence[tuple[float, float]]], xlabel: str, title: str,
                path: str) -> None:
  """Test top-1 against a cost, one line per selection method (TOFA Figures 6, 8-11)."""
  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  for method, points in series.items():
    if not points:
      continue
    xs, ys = zip(*sorted(points), strict=True)
    ax.plot(xs, 100 * np.asarray(ys), marker=_MARKERS.get(method, "x"),
            label=_NAMES.get(method, method))
  ax.set_xlabel(xlabel)
  ax.set_ylabel("test top-1 (%)")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def nfr_heatmap(matrix: np.ndarray, labels: Sequence[str], path: str) -> None:
  """M[i, j] = NFR(model i -> model j) in %, annotated."""
  fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2.5, 1.0 * len(labels) + 2), dpi=120)
  im = ax.imshow(100 * matrix, cmap="viridis")
  ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
  ax.set_yticks(range(len(labels)), labels)
  ax.set_xlabel("model j (target)")
  ax.set_ylabel("model i (reference)")
  ax.set_title("negative flip rate NFR(i -> j), %")
  for i in range(len(labels)):
    for j in range(len(labels)):
      ax.text(j, i, f"{100 * matrix[i, j]:.1f}", ha="center", va="center", color="w",
              fontsize=8)
  fig.colorbar(im, ax=ax)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def population_boxplot(bins: Sequence[tuple[str, Sequence[float]]], xlabel: str,
                       path: str) -> None:
  """Accuracy distribution of random subnets per cost bin (RSS Figure 3)."""
  fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(bins) + 2), 4), dpi=120)
  labels = [label for label, _ in bins]
  data = [100 * np.asarray(v) if len(v) else np.asarray([np.nan]) for _, v in bins]
  ax.boxplot(data, tick_labels=labels)
  ax.set_xlabel(xlabel)
  ax.set_ylabel("test top-1 (%)")
  ax.set_title("subnet population by bin")
  ax.grid(alpha=0.3, axis="y")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)

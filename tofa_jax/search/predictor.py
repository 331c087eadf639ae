"""An accuracy predictor over subnets, for the palette's `predictor` method (TOFA 4.6 (a)).

TOFA 4.6 compares its rule with "evolutionary search [with] an accuracy predictor
model, which in turn requires a one-time computation of validation accuracy of
~1000 different subnets". The predictor is OFA's (section 3.3 and its released
`AccuracyPredictor`): an MLP with three hidden layers of 400 ReLU units on a
one-hot encoding of the architecture, regressing validation top-1.

Encoding: one block per gene of the `Genome` (resolution, widths, depths,
kernels, expansions), one-hot over the gene's choices, so its length is the sum
of the genes' choice counts. Per-layer genes of layers a stage does not use (past
its depth) are all zero, as in OFA's encoding: they do not shape the subnet, so
the encoding is a function of the subnet alone.

The samples are spread over the MFLOPs range with the RSS population bins
(`population.sample_bins`, `BINS` bins, taken bin by bin in turn); the ends of
large spaces hold few subnets, so a shortfall is filled with uniform random
subnets. `fit` holds out `holdout` of them (seeded), trains on the rest (Adam,
MSE on standardised top-1, fixed epochs and seed: deterministic) and reports
the held-out RMSE and Kendall tau; the model trained on the rest is the one the
search uses, so the figures describe it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from tofa_jax.search import population
from tofa_jax.space import arch as arch_lib
from tofa_jax.space.genome import Genome

BINS = 10  # MFLOPs bins the samples are spread over (the RSS population protocol's)


@dataclasses.dataclass(frozen=True)
class PredictorConfig:
  samples: int = 1000  # subnets evaluated on validation data (TOFA 4.6: ~1000)
  hidden: tuple[int, ...] = (400, 400, 400)  # OFA's accuracy predictor
  epochs: int = 200
  batch_size: int = 128
  learning_rate: float = 1e-3
  holdout: float = 0.2  # share of the samples held out to measure the fit

  def check(self) -> None:
    for name in ("samples", "epochs", "batch_size"):
      if getattr(self, name) < 1:
        raise ValueError(f"palette.predictor.{name}={getattr(self, name)}; use at least 1")
    if any(int(h) < 1 for h in self.hidden):
      raise ValueError(f"palette.predictor.hidden={tuple(self.hidden)}; every layer needs at "
                       "least 1 unit")
    held = held_out_count(self.samples, self.holdout)
    if not 0.0 <= self.holdout < 1.0 or self.samples - held < 1 or held == 1:
      raise ValueError(f"palette.predictor.holdout={self.holdout} with palette.predictor."
                       f"samples={self.samples} leaves {held} held out; use 0 or a share that "
                       "holds out at least 2 samples and trains on at least 1")


def held_out_count(samples: int, holdout: float) -> int:
  return int(round(samples * holdout))


def encoding_size(genome: Genome) -> int:
  return sum(len(g.choices) for g in genome.genes)


def encode(genome: Genome, archs: Sequence[arch_lib.Arch]) -> np.ndarray:
  """(len(archs), encoding_size) float32: one-hot per active gene, zeros for unused layers."""
  offsets = np.cumsum([0] + [len(g.choices) for g in genome.genes])
  out = np.zeros((len(archs), offsets[-1]), np.float32)
  for row, arch in enumerate(archs):
    idx = genome.encode(arch)
    for i in genome.active(idx):
      out[row, offsets[i] + idx[i]] = 1.0
  return out


class MLP(nn.Module):
  """ReLU hidden layers, then one linear output (standardised top-1)."""
  hidden: tuple[int, ...]

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(1)(x)[..., 0]


class AccuracyPredictor:
  """Predicted validation top-1 of subnets; `predictor(arch)` is a search fitness."""

  def __init__(self, genome: Genome, hidden: Sequence[int], params, mean: float,
               scale: float):
    self.genome, self.params, self.mean, self.scale = genome, params, mean, scale
    module = MLP(tuple(hidden))
    self._apply = jax.jit(module.apply)

  def predict_encoded(self, x: np.ndarray) -> np.ndarray:
    return np.asarray(self._apply(self.params, jnp.asarray(x))) * self.scale + self.mean

  def predict(self, archs: Sequence[arch_lib.Arch]) -> np.ndarray:
    return self.predict_encoded(encode(self.genome, archs))

  def __call__(self, arch: arch_lib.Arch) -> float:
    return float(self.predict([arch])[0])


def train_mlp(x: np.ndarray, y: np.ndarray, cfg: PredictorConfig, seed: int):
  """MLP params fitted to (x, y) by Adam on the MSE: `cfg.epochs` passes over a
  per-epoch shuffle (full batches of min(batch_size, n); a remainder is left out
  of that epoch), all in one compiled program."""
  n = len(x)
  batch = min(cfg.batch_size, n)
  steps = n // batch
  module = MLP(tuple(int(h) for h in cfg.hidden))
  key = jax.random.key(seed)
  params = module.init(jax.random.fold_in(key, 0), jnp.zeros((1, x.shape[1]), jnp.float32))
  tx = optax.adam(cfg.learning_rate)

  def loss_fn(p, xb, yb):
    return jnp.mean((module.apply(p, xb) - yb) ** 2)

  @jax.jit
  def run(params, x, y):
    def epoch(carry, e):
      order = jax.random.permutation(jax.random.fold_in(key, e + 1), n)[:steps * batch]

      def step(carry, ids):
        p, opt = carry
        grads = jax.grad(loss_fn)(p, x[ids], y[ids])
        updates, opt = tx.update(grads, opt, p)
        return (optax.apply_updates(p, updates), opt), None

      carry, _ = jax.lax.scan(step, carry, order.reshape(steps, batch))
      return carry, None

    (params, _), _ = jax.lax.scan(epoch, (params, tx.init(params)), jnp.arange(cfg.epochs))
    return params

  return run(params, jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
  """Kendall's tau-b (ties in either ranking count as neither concordant nor discordant);
  nan when either ranking is constant."""
  import scipy.stats  # here, not at the top: it takes a second and only the search reports tau

  return float(scipy.stats.kendalltau(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                      variant="b").statistic)


def fit(genome: Genome, archs: Sequence[arch_lib.Arch], top1: Sequence[float],
        cfg: PredictorConfig, seed: int) -> tuple[AccuracyPredictor, dict]:
  """The predictor trained on all but a seeded `cfg.holdout` share of (archs, top1),
  and its fit: {'samples', 'trained_on', 'held_out', 'rmse', 'kendall_tau', ...}."""
  x, y = encode(genome, archs), np.asarray(top1, np.float32)
  held = held_out_count(len(archs), cfg.holdout)
  order = np.random.default_rng(seed).permutation(len(archs))
  test, train = order[:held], order[held:]
  if len(train) < 1:
    raise ValueError(f"palette.predictor.holdout={cfg.holdout} leaves no sample to train on")
  mean = float(np.mean(y[train]))
  scale = float(np.std(y[train])) or 1.0  # equal targets: fit the offset only
  params = train_mlp(x[train], (y[train] - mean) / scale, cfg, seed)
  model = AccuracyPredictor(genome, cfg.hidden, params, mean, scale)
  info = {"samples": len(archs), "trained_on": len(train), "held_out": held,
          "hidden": list(cfg.hidden), "epochs": cfg.epochs, "encoding_size": x.shape[1],
          "train_rmse": _rmse(model.predict_encoded(x[train]), y[train]),
          "rmse": None, "kendall_tau": None}
  if held:
    pred = model.predict_encoded(x[test])
    tau = kendall_tau(pred, y[test])
    info.update(rmse=_rmse(pred, y[test]), kendall_tau=None if math.isnan(tau) else tau)
  return model, info


def describe(info: dict) -> str:
  """One line on the fit that `fit` reported."""
  if not info["held_out"]:
    return f"trained on {info['trained_on']}, none held out (palette.predictor.holdout=0)"
  tau = info["kendall_tau"]
  return (f"trained on {info['trained_on']}; on {info['held_out']} held out: RMSE "
          f"{info['rmse']:.4f}, Kendall tau " + ("undefined (a constant ranking)"
                                                  if tau is None else f"{tau:.3f}"))


def _rmse(pred: np.ndarray, y: np.ndarray) -> float:
  return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - y) ** 2)))


def spread_samples(genome: Genome, mflops: Callable[[arch_lib.Arch], float], samples: int,
                   rng: np.random.Generator, tries_per_sample: int = 50) -> list[arch_lib.Arch]:
  """`samples` distinct subnets spread over the MFLOPs range (fewer only when the space
  holds fewer distinct subnets than uniform draws find in `tries_per_sample` tries each)."""
  bins = population.sample_bins(genome, mflops, min(BINS, samples),
                                math.ceil(samples / min(BINS, samples)), rng)
  longest = max(len(b.archs) for b in bins)
  out = [b.archs[i] for i in range(longest) for b in bins if i < len(b.archs)][:samples]
  seen = set(out)
  sizes = [len(g.choices) for g in genome.genes]
  for _ in range(tries_per_sample * samples):
    if len(out) == samples:
      break
    arch = genome.decode([int(rng.integers(n)) for n in sizes])
    if arch not in seen:
      seen.add(arch)
      out.append(arch)
  return out

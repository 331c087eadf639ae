"""Which subnets each training step trains (`train.sampling`, `train.mode`): host-side,
pure in (seed, step), so every host draws the same subnets without communicating.

Supernet schemes (`train.mode='supernet'`):
- `sandwich` (TOFA, default): [min, K random]; the max subnet, the teacher, is always
  trained by the step itself. The min at the smallest resolution, the random ones
  sharing one resolution drawn per step, inside the space's MFLOPs window.
- `rss_batch` / `rss_epoch` (RSS): one random subnet per step / per epoch, at a
  resolution drawn with it, inside the window.
- `progressive_shrinking` (OFA, as RSS 4.1 describes it), phases by `train.ps_phases`
  (fractions of `train.steps`): the max network, then elastic kernel (depth, expansion
  and widths at their max), then elastic kernel and depth, then every dimension; each
  step draws `train.ps_subnets[phase]` subnets (1, 1, 2, 4) sharing one resolution
  drawn per step (the full phase: the max at the largest). No MFLOPs window, as OFA.
- RSS 6.3.2's bias study, one network per step: `single_min`, `single_mid`
  (`sampling.mid_arch`, the middle choice of every dimension), `single_median`
  (`sampling.median_arch`, the median-cost subnet), `single_max`; and two:
  `min_then_max` / `max_then_min` (one for the first half of the epochs, then the
  other), `alternating` (min on even epochs, max on odd ones). Each subnet at its
  own resolution (min: the smallest).
Every scheme but `sandwich` trains its subnets without a teacher (`step.py`).

`train.mode='single'` (TOFA Table 3's baselines) trains one fixed arch, `train.arch`,
every step; `train.sampling` is not used.

A step's subnets other than sandwich's min share one resolution, so the step compiles
one program per (resolution, number of subnets): `Schedule.programs` lists them.
"""

from __future__ import annotations

import dataclasses
import os

from tofa_jax.space import arch as arch_lib
from tofa_jax.space import sampling
from tofa_jax.space.search_space import SearchSpace

SCHEMES = ("sandwich", "rss_epoch", "rss_batch", "progressive_shrinking", "single_min",
           "single_mid", "single_median", "single_max", "min_then_max", "max_then_min",
           "alternating")
MODES = ("supernet", "single")
WINDOWED = ("sandwich", "rss_epoch", "rss_batch")  # random subnets inside the MFLOPs window
TWO_SUBNETS = ("min_then_max", "max_then_min", "alternating")  # switch at epoch boundaries
PS_PHASES = ("full", "kernel", "depth", "width")
PS_VARY = {"full": (), "kernel": ("kernel",), "depth": ("kernel", "depth"),
           "width": sampling.ELASTIC}  # what each phase varies; the rest at their max
_SINGLE = {"single_min": sampling.min_arch, "single_mid": sampling.mid_arch,
           "single_median": sampling.median_arch, "single_max": sampling.max_arch}


def fixed_arch(space: SearchSpace, spec: str) -> arch_lib.Arch:
  """`train.arch`: 'max', 'min', 'random:SEED' or an arch JSON file of the space."""
  allowed = "'max', 'min', 'random:SEED' or an arch JSON file"
  is_name = spec in ("max", "min") or (spec.startswith("random:") and
                                      spec.split(":", 1)[1].isdigit())
  if not is_name and not os.path.isfile(spec):
    raise ValueError(f"train.arch={spec!r} is neither a subnet name nor a file; allowed: "
                     f"{allowed}")
  try:
    return sampling.sample_named(space, spec)
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"train.arch={spec!r}: not an arch of space {space.name!r} ({e})") from None


@dataclasses.dataclass(frozen=True)
class Schedule:
  """The subnets of every step of one run.

  steps: the run's `train.steps` (progressive shrinking's phase lengths, the middle
    of the run for `min_then_max`/`max_then_min`).
  epoch_steps: steps per epoch (`epochs.Epoch.steps`).
  fixed: `train.mode='single'`'s arch; None for supernet training.
  """

  scheme: str = "sandwich"
  num_random: int = 2
  steps: int = 1
  epoch_steps: int = 1
  ps_phases: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)
  ps_subnets: tuple[int, ...] = (1, 1, 2, 4)
  fixed: arch_lib.Arch | None = None

  def __post_init__(self):
    if self.scheme not in SCHEMES:
      raise ValueError(f"train.sampling={self.scheme!r} is unknown; choose one of "
                       f"{list(SCHEMES)}")
    if self.num_random < 0:
      raise ValueError(f"train.num_random={self.num_random} must be >= 0")
    if len(self.ps_phases) != 4 or abs(sum(self.ps_phases) - 1) > 1e-6 or min(
        self.ps_phases) < 0:
      raise ValueError(f"train.ps_phases={tuple(self.ps_phases)} does not split the run; "
                       "allowed: 4 fractions of train.steps (full, kernel, depth, width), "
                       "each >= 0, summing to 1")
    if len(self.ps_subnets) != 4 or min(self.ps_subnets) < 1 or self.ps_subnets[0] != 1:
      raise ValueError(f"train.ps_subnets={tuple(self.ps_subnets)} is not allowed; allowed: "
                       "4 counts of subnets per step (full, kernel, depth, width), each "
                       ">= 1, the full phase's 1 (it trains the max network)")

  @property
  def teacher(self) -> bool:
    """Whether the step distils from the max subnet (sandwich) or not (the others)."""
    return self.fixed is None and self.scheme == "sandwich"

  def epoch(self, step: int) -> int:
    return step // self.epoch_steps

  def switch_epoch(self) -> int:
    """`min_then_max`/`max_then_min`: the first epoch of the run's second half, the epoch
    boundary nearest the middle of the run (at least 1)."""
    return max(1, int(self.steps / self.epoch_steps / 2 + 0.5))

  def ps_bounds(self) -> tuple[int, ...]:
    """The step at which each progressive-shrinking phase ends (rounded cumulative
    fractions of `steps`; the last is `steps`)."""
    out, cum = [], 0.0
    for f in self.ps_phases:
      cum += f
      out.append(int(round(cum * self.steps)))
    out[-1] = max(out[-1], self.steps)
    return tuple(out)

  def ps_phase(self, step: int) -> int:
    """The progressive-shrinking phase of `step`: 0 full, 1 kernel, 2 depth, 3 width."""
    bounds = self.ps_bounds()
    return next((i for i, b in enumerate(bounds) if step < b), len(bounds) - 1)

  def check_epochs(self) -> None:
    """The two-subnet schemes switch at epoch boundaries: they need 2 epochs at least."""
    if self.fixed is None and self.scheme in TWO_SUBNETS and self.steps < 2 * self.epoch_steps:
      raise ValueError(f"train.sampling={self.scheme!r} switches subnets at epoch boundaries, "
                       f"but train.steps={self.steps} is under 2 epochs of "
                       f"{self.epoch_steps} steps; raise train.steps to >= "
                       f"{2 * self.epoch_steps}")

  def archs(self, space: SearchSpace, seed: int, step: int) -> list[arch_lib.Arch]:
    """The subnets `step` trains besides sandwich's max (pure in seed and step)."""
    if self.fixed is not None:
      return [self.fixed]
    s, epoch = self.scheme, self.epoch(step)
    if s == "sandwich":
      rng = sampling.rng_for(seed, step, salt=0)
      res = space.resolutions[int(rng.integers(len(space.resolutions)))]
      return [sampling.min_arch(space)] + [
          sampling.sample_arch(space, seed, step, salt=1 + i, resolution=res)
          for i in range(self.num_random)]
    if s == "rss_batch":
      return [sampling.sample_arch(space, seed, step, salt=101)]
    if s == "rss_epoch":
      return [sampling.sample_arch(space, seed, epoch, salt=202)]
    if s == "progressive_shrinking":
      phase = self.ps_phase(step)
      if phase == 0:
        return [sampling.max_arch(space)]
      rng = sampling.rng_for(seed, step, salt=303)
      res = space.resolutions[int(rng.integers(len(space.resolutions)))]
      vary = PS_VARY[PS_PHASES[phase]]
      return [sampling.random_arch(space, rng, res, vary)
              for _ in range(self.ps_subnets[phase])]
    if s in _SINGLE:
      return [_SINGLE[s](space)]
    first_half = epoch < self.switch_epoch()
    use_min = {"min_then_max": first_half, "max_then_min": not first_half,
               "alternating": epoch % 2 == 0}[s]
    return [sampling.min_arch(space) if use_min else sampling.max_arch(space)]

  def programs(self, space: SearchSpace) -> set[tuple[int, int]]:
    """Every (resolution, number of subnets) a step can take: one compiled program each."""
    largest, smallest = max(space.resolutions), min(space.resolutions)
    if self.fixed is not None:
      return {(self.fixed.resolution, 1)}
    s = self.scheme
    if s == "sandwich":
      if self.num_random == 0:
        return {(smallest, 1)}
      return {(r, 1 + self.num_random) for r in space.resolutions}
    if s in ("rss_batch", "rss_epoch"):
      return {(r, 1) for r in space.resolutions}
    if s == "progressive_shrinking":
      out = {(largest, 1)} if self.ps_phases[0] > 0 else set()
      return out | {(r, n) for f, n in zip(self.ps_phases[1:], self.ps_subnets[1:], strict=True)
                    if f > 0 for r in space.resolutions}
    if s in _SINGLE:
      return {(_SINGLE[s](space).resolution, 1)}
    return {(smallest, 1), (largest, 1)}


def step_resolution(archs: list[arch_lib.Arch]) -> int:
  """The step program's static resolution: its random subnets' (the last arch's;
  with no random subnet, the min's)."""
  return archs[-1].resolution


def from_config(config, space: SearchSpace, epoch_steps: int = 1) -> Schedule:
  """The run's Schedule (`train.*`); `epoch_steps` from `epochs.of_run` (the default 1
  where data sizes are not known yet: validation)."""
  t = config.train
  single = t.get("mode", "supernet") == "single"
  return Schedule(
      scheme=t.sampling, num_random=t.num_random, steps=int(t.steps), epoch_steps=epoch_steps,
      ps_phases=tuple(t.get("ps_phases", (0.25, 0.25, 0.25, 0.25))),
      ps_subnets=tuple(t.get("ps_subnets", (1, 1, 2, 4))),
      fixed=fixed_arch(space, t.get("arch", "max")) if single else None)

"""The stopping rule of `kisim train`: when is PPO done? (docs/training.md, "Convergence")

Every evaluation runs the current policy deterministically on the same held-out
episodes (every pattern x the same twin seeds), so two evaluations differ only by the
policy. Training has converged at evaluation k (with window W = `window`) when both:

1. **No significant improvement.** Pair the per-episode rewards of evaluation k with
   those of evaluation k - W + 1 (same pattern, same seed). The mean paired improvement
   d over the last W evaluations lies inside its own Student-t 95 % confidence interval
   (d <= half-width: it is not distinguishable from zero) or below `min_delta` (per
   episode, in reward units). A policy that got worse also satisfies this - the best
   model is kept anyway.
2. **A stable policy.** For each of the last W - 1 pairs of successive evaluations,
   on the observations the newer policy visited in its evaluation, compared
   *behaviourally* - each action distribution is first pushed through the env's action
   decoding, so joint actions with the same effect in that state (+1 or +2 replicas
   when both hit max_replicas; any placement when nothing changes) count as one:
   - KL(pi_old || pi_new) summed over an episode's steps, averaged over the
     evaluation's episodes, <= `kl_max` (nats per episode: the KL between the two
     policies' action-sequence distributions on the visited states), and
   - action drift, the share of visited observations whose deterministic action has
     a different effect, <= `drift_max`.
   Per episode rather than per step on purpose: a policy still shifting probability
   on its one decisive step (e.g. whether to drop the CPU pod at t = 0) would hide
   in a per-step mean over 20 steps.

and at least `min_evaluations` evaluations and `min_timesteps` steps have run. The
rule is a pure function of the evaluation history (`Decision` says which part held,
with the numbers), so it is unit-tested and re-checkable from ``evaluations.json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as st


@dataclass
class EvalRecord:
    """One periodic evaluation of the policy on the held-out episodes."""

    index: int
    timesteps: int
    wall_s: float  # seconds since `kisim train` started (all sessions of a resumed run)
    rewards: list[float]  # per episode, in the fixed (pattern, seed) order
    kl: float = math.nan  # vs the previous evaluation's policy (NaN for the first)
    drift: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)  # per-pattern KPIs, vs-baseline figures

    @property
    def mean_reward(self) -> float:
        return float(np.mean(self.rewards)) if self.rewards else math.nan

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "timesteps": self.timesteps, "wall_s": self.wall_s,
                "rewards": list(self.rewards), "kl": self.kl, "drift": self.drift,
                "mean_reward": self.mean_reward, **self.extra}  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EvalRecord:
        core = {"index", "timesteps", "wall_s", "rewards", "kl", "drift", "mean_reward"}

        def num(x: Any) -> float:
            return math.nan if x is None else float(x)

        return cls(int(d["index"]), int(d["timesteps"]), float(d["wall_s"]),
                   [float(r) for r in d["rewards"]], num(d.get("kl")), num(d.get("drift")),
                   {k: v for k, v in d.items() if k not in core})  # fmt: skip


@dataclass(frozen=True)
class Decision:
    stop: bool
    reason: str  # one line, with the numbers
    improvement: float = math.nan  # mean paired improvement over the window
    half_width: float = math.nan  # its 95 % CI half-width
    kl_max_seen: float = math.nan
    drift_max_seen: float = math.nan
    plateau: bool = False
    stable: bool = False


@dataclass(frozen=True)
class ConvergenceRule:
    window: int = 4
    min_evaluations: int = 6
    min_timesteps: int = 0
    level: float = 0.95
    min_delta: float = 0.02
    kl_max: float = 0.02
    drift_max: float = 0.02

    def check(self, history: Sequence[EvalRecord]) -> Decision:
        """Whether to stop after the last record of `history` (see the module doc)."""
        n = len(history)
        if n < max(self.min_evaluations, self.window, 2):
            return Decision(False, f"{n} evaluations < {max(self.min_evaluations, self.window, 2)}")
        last = history[-1]
        if last.timesteps < self.min_timesteps:
            return Decision(False, f"{last.timesteps} steps < min_timesteps {self.min_timesteps}")
        first = history[-self.window]
        d = np.asarray(last.rewards) - np.asarray(first.rewards)
        imp = float(d.mean())
        hw = half_width(d, self.level)
        plateau = imp <= max(hw, self.min_delta)
        pairs = history[-self.window + 1 :]
        kls = [r.kl for r in pairs]
        drifts = [r.drift for r in pairs]
        kmax = max(kls) if all(math.isfinite(k) for k in kls) else math.inf
        dmax = max(drifts) if all(math.isfinite(x) for x in drifts) else math.inf
        stable = kmax <= self.kl_max and dmax <= self.drift_max
        span = f"evaluations {first.index}-{last.index} ({first.timesteps}-{last.timesteps} steps)"
        numbers = (f"reward improvement {imp:+.4f} per episode (95% CI half-width {hw:.4f}, "
                   f"min_delta {self.min_delta}); max KL {kmax:.2e} (<= {self.kl_max}); "
                   f"max action drift {dmax:.1%} (<= {self.drift_max:.0%})")  # fmt: skip
        if plateau and stable:
            return Decision(True, f"converged over {span}: {numbers}", imp, hw, kmax, dmax,
                            True, True)  # fmt: skip
        why = []
        if not plateau:
            why.append("still improving")
        if not stable:
            why.append("policy still moving")
        return Decision(False, f"{' and '.join(why)}: {numbers}", imp, hw, kmax, dmax,
                        plateau, stable)  # fmt: skip


def half_width(d: np.ndarray, level: float = 0.95) -> float:
    """Student-t half-width of the mean of `d` (0 when all equal, inf when n < 2)."""
    n = len(d)
    if n < 2:
        return math.inf
    sd = float(np.std(d, ddof=1))
    return float(st.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)

"""Reward presets (registry): one step's `Window` -> a bounded scalar, with its terms.

Each preset is a weighted sum of named terms; every term is bounded, so the reward is
bounded by the weights (`RewardPreset.bounds`). Improvements are measured against a
per-step `Reference` chosen by `env.reward_baseline` (docs/environment.md):

* ``slo`` (default, free): latency reference = the SLO; throughput reference = the
  users' demand over the step (mean pattern level x requests per user-second with the
  fastest possible answer); GPU-utilisation reference = 0.
* ``static``: the static policy's run of the same scenario, pattern and seed (the
  same step on the same random numbers), cached per (scenario, pattern, seed).

Terms (all in the table in docs/environment.md):

==========  ===========================================================  =========
term        formula                                                      range
==========  ===========================================================  =========
latency     clip((ref_p95 - p95) / ref_p95, -1, 1)                       [-1, 1]
throughput  clip(throughput / ref_throughput - 1, -1, 1)                 [-1, 1]
efficiency  clip(1 - price-weighted replicas / the same at max, 0, 1)    [0, 1]
stability   -min(settings changed in the step / 4, 1)                    [-1, 0]
gpu_util    clip(gpu_util - ref_gpu_util, -1, 1)                         [-1, 1]
latency_p   min(p95 / SLO, 2) / 2   (a penalty: subtracted)              [0, 1]
qos         (SLO violations + errors) / answered  (subtracted)           [0, 1]
qos_req     (SLO violations + errors) / an average step's requests       [0, 1]
            (the episode pattern's mean demand x step; subtracted)
cost        money of bound pods / the same at max_replicas (subtracted)  [0, 1]
==========  ===========================================================  =========
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from kisim.core.registry import registrar
from kisim.core.window import Window
from kisim.env.context import EnvContext, EnvState
from kisim.env.observation import latency_ratio


@dataclass(frozen=True, slots=True)
class Reference:
    """What one step is compared with (see `env.reward_baseline`)."""

    p95_ms: float
    throughput_rps: float
    gpu_util: float


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def _stalled(w: Window) -> bool:
    return w.offered > 0 or w.errors > 0 or w.queue_length > 0


def latency_improvement(w: Window, ref_p95_ms: float) -> float:
    """Relative p95 improvement over the reference, in [-1, 1]; no load -> 0, stalled -> -1."""
    p95 = w.latency_p95_ms
    if p95 != p95:
        return -1.0 if _stalled(w) else 0.0
    return _clip((ref_p95_ms - p95) / ref_p95_ms, -1.0, 1.0)


def throughput_improvement(w: Window, ref_rps: float) -> float:
    """Relative throughput change against the reference, in [-1, 1]; no reference -> 0."""
    tp = w.throughput_rps
    if not ref_rps > 0 or tp != tp:
        return 0.0
    return _clip(tp / ref_rps - 1.0, -1.0, 1.0)


def efficiency(w: Window, ctx: EnvContext, st: EnvState) -> float:
    """1 - price-weighted replica-seconds / (the same with every pool at max_replicas).

    Bound (scheduled) pods cost, Pending ones do not (they hold no node). For a CPU
    pool the price scales with the template's cores over the scenario's, so that the
    `resources` preset cannot buy cores for free; a GPU pod's price is its GPU's.
    """
    dur = w.duration
    if dur <= 0:
        return 0.0
    pr = ctx.prices
    cost = 0.0
    for pool in ctx.pools:
        rec = w.pools.get(pool)
        if rec is None:
            continue
        c = pr[pool] * rec.replica_s
        if ctx.kinds[pool] == "cpu":
            t, t0 = st.templates.get(pool), ctx.templates.get(pool)
            c = c * (t.cpu / t0.cpu if t is not None and t0 is not None else 1.0)
        cost += c
    return _clip(1.0 - cost / dur / ctx.cost_max, 0.0, 1.0)


def money(w: Window, ctx: EnvContext, st: EnvState) -> float:
    """Money of the step's bound pods over the same with every pool at max_replicas, in [0, 1].

    Prices per pod-hour are the scenario's (`kisim.core.prices`); a CPU pool's scale with its
    template's cores over the scenario's (as in `efficiency`), since a core is what is paid
    for. Pending pods cost nothing (they hold no node)."""
    dur = w.duration
    if dur <= 0:
        return 0.0
    spent = 0.0
    for pool in ctx.pools:
        rec = w.pools.get(pool)
        if rec is None:
            continue
        c = ctx.money_rates[pool] * rec.replica_s
        if ctx.kinds[pool] == "cpu":
            t, t0 = st.templates.get(pool), ctx.templates.get(pool)
            c = c * (t.cpu / t0.cpu if t is not None and t0 is not None else 1.0)
        spent += c
    return _clip(spent / dur / ctx.money_max, 0.0, 1.0)


def stability(changes: int) -> float:
    """-min(changes / 4, 1): each replica added or removed, placement switch, template field
    or HPA-target change in the step counts one, whoever made it."""
    return -min(changes / 4.0, 1.0)


def gpu_util_gain(w: Window, ref_gpu_util: float) -> float:
    """GPU utilisation over the reference's, in [-1, 1]; no GPU pod -> utilisation 0."""
    g = w.gpu_util
    g = 0.0 if g != g else _clip(g, 0.0, 1.0)
    return _clip(g - ref_gpu_util, -1.0, 1.0)


def latency_penalty(w: Window, slo_ms: float) -> float:
    """min(p95 / SLO, 2) / 2 in [0, 1]; no load -> 0, stalled -> 1."""
    return latency_ratio(w, slo_ms, cap=2.0) / 2.0


def qos_per_request(w: Window, ctx: EnvContext) -> float:
    """Misses over an average step's requests: its mean over an episode's steps is the share
    of all the requests that missed (SLO attainment's complement), where `qos_violation`
    averages each step's share and so counts a miss in a 3x-load burst a third as much as
    one in a quiet step."""
    if w.served + w.errors == 0:
        return qos_violation(w)  # stalled 1, no load 0, as per step
    return _clip(w.slo_violations / (ctx.mean_demand_rps * ctx.step_s), 0.0, 1.0)


def qos_violation(w: Window) -> float:
    """Share of answered requests over the SLO or failed, in [0, 1]; stalled -> 1."""
    answered = w.served + w.errors
    if answered == 0:
        return 1.0 if _stalled(w) else 0.0
    return _clip(w.slo_violations / answered, 0.0, 1.0)


class RewardPreset(ABC):
    """sum(weight[t] * sign[t] * term[t]) over `default_weights`' terms."""

    name: ClassVar[str]
    default_weights: ClassVar[dict[str, float]]
    term_range: ClassVar[dict[str, tuple[float, float]]]  # of the signed term
    needs_platform: ClassVar[bool] = False  # only for scenarios with a platform section

    def __init__(self, ctx: EnvContext, weights: dict[str, float] | None = None) -> None:
        self.ctx = ctx
        self.weights = {**self.default_weights, **(weights or {})}
        self._w = tuple(self.weights[k] for k in self.default_weights)

    @property
    def bounds(self) -> tuple[float, float]:
        lo = hi = 0.0
        for k, w in self.weights.items():
            a, b = self.term_range[k]
            lo += min(w * a, w * b)
            hi += max(w * a, w * b)
        return lo, hi

    @abstractmethod
    def terms(self, w: Window, ref: Reference, changes: int, st: EnvState) -> tuple[float, ...]:
        """The reward terms of one step, in `default_weights` order."""

    def __call__(self, w: Window, ref: Reference, changes: int,
                 st: EnvState) -> tuple[float, dict[str, float]]:  # fmt: skip
        ts = self.terms(w, ref, changes, st)
        r = 0.0
        for wt, t in zip(self._w, ts, strict=True):
            r += wt * t
        return r, dict(zip(self.default_weights, ts, strict=True))


REWARDS: dict[str, type[RewardPreset]] = {}


register = registrar(REWARDS)


@register
class Weighted(RewardPreset):
    """0.4 latency + 0.3 throughput + 0.2 efficiency + 0.1 stability (improvements vs reference)."""

    name = "weighted"
    default_weights = {"latency": 0.4, "throughput": 0.3, "efficiency": 0.2, "stability": 0.1}
    term_range = {"latency": (-1.0, 1.0), "throughput": (-1.0, 1.0), "efficiency": (0.0, 1.0),
                  "stability": (-1.0, 0.0)}  # fmt: skip

    def terms(self, w: Window, ref: Reference, changes: int, st: EnvState) -> tuple[float, ...]:
        return (latency_improvement(w, ref.p95_ms), throughput_improvement(w, ref.throughput_rps),
                efficiency(w, self.ctx, st), stability(changes))  # fmt: skip


@register
class QoS(RewardPreset):
    """w1 GPU-utilisation gain + w2 efficiency - w3 latency penalty - w4 QoS violation.

    The penalty terms are reported with their sign (<= 0) so that the reward is the plain
    weighted sum of the terms in `info["reward_terms"]`.
    """

    name = "qos"
    default_weights = {"gpu_util": 0.2, "efficiency": 0.2, "latency": 0.3, "qos": 0.3}
    term_range = {"gpu_util": (-1.0, 1.0), "efficiency": (0.0, 1.0), "latency": (-1.0, 0.0),
                  "qos": (-1.0, 0.0)}  # fmt: skip

    def terms(self, w: Window, ref: Reference, changes: int, st: EnvState) -> tuple[float, ...]:
        return (gpu_util_gain(w, ref.gpu_util), efficiency(w, self.ctx, st),
                -latency_penalty(w, self.ctx.slo_ms), -qos_violation(w))  # fmt: skip


@register
class Cost(RewardPreset):
    """-(w1 money + w2 SLO misses): what the service costs and how often it fails its users.

    ``cost`` is the money the step's pods cost, as a share of the money of every pool at
    max_replicas (so 1 is the largest bill the scenario allows); ``slo`` is the share of the
    step's answered requests over the SLO or failed. Both are subtracted, so 0 is a free
    service that never misses. The default weights (0.25, 0.75) make the largest bill weigh
    a third of every request missing the SLO: in a fleet of 8 pods, adding one for a step
    pays when it saves more than about 4 % of the step's requests from missing the SLO.
    """

    name = "cost"
    default_weights = {"cost": 0.25, "slo": 0.75}
    term_range = {"cost": (-1.0, 0.0), "slo": (-1.0, 0.0)}

    def terms(self, w: Window, ref: Reference, changes: int, st: EnvState) -> tuple[float, ...]:
        return (-money(w, self.ctx, st), -qos_violation(w))


@register
class CostPerRequest(Cost):
    """`cost` with SLO misses counted per request (`qos_per_request`) rather than per step.

    Same weights and the same mean trade-off as `cost`, but the episode's SLO term is the
    share of requests that missed — the leaderboard's SLO attainment — instead of the mean
    of each step's share. A step can count at most one average step's requests (clipped).
    """

    name = "cost_requests"

    def terms(self, w: Window, ref: Reference, changes: int, st: EnvState) -> tuple[float, ...]:
        return (-money(w, self.ctx, st), -qos_per_request(w, self.ctx))

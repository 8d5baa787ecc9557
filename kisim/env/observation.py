"""Observation presets (registry): what a policy sees of one step's `Window`.

Every feature is dimensionless and bounded (table in docs/environment.md). NaNs in
a Window (no completed request, no ready pod, no GPU pod) become documented finite
values: utilisations 0 (nothing is running, nothing is used); latency 0 when there
was no load and the latency cap when requests were offered or queued but none
completed (the service is stalled, which is the worst case, not the best).

When monitoring fails (scrapes fail, Prometheus is down: `twin.faults`, or a real outage)
the utilisations are NaN although pods are Ready, and "nothing is used" would be a lie. The
``*-stale`` presets (`default-stale`, `extended-stale`) keep the last value Prometheus gave
instead and add ``metrics_stale``: the time since the utilisations were last complete over
Prometheus' 5-min lookback delta, clipped to 1. The plain presets are unchanged, so trained
policies and their observation sizes keep working.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from gymnasium import spaces

from kisim.core.registry import registrar
from kisim.core.window import Window
from kisim.env.context import EnvContext, EnvState

Layout = tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]
"""(feature names, lower bounds, upper bounds)."""
LATENCY_CAP = 4.0  # p95 / SLO is clipped here
THROUGHPUT_CAP = 2.0  # throughput / scale is clipped here


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def _util(x: float) -> float:
    return 0.0 if x != x else _clip(x, 0.0, 1.0)  # x != x: NaN


def latency_ratio(w: Window, slo_ms: float, cap: float = LATENCY_CAP) -> float:
    """p95 / SLO clipped to [0, cap]; NaN p95 -> 0 without load, `cap` when stalled."""
    p95 = w.latency_p95_ms
    if p95 != p95:
        return cap if (w.offered > 0 or w.errors > 0 or w.queue_length > 0) else 0.0
    return _clip(p95 / slo_ms, 0.0, cap)


def load_trend(rates: list[float], scale: float) -> float:
    """Least-squares slope of the offered rate over the history, as the change over the
    history span relative to the throughput scale, clipped to [-1, 1]; 0 with < 2 points."""
    n = len(rates)
    if n < 2:
        return 0.0
    xm = (n - 1) / 2
    ym = sum(rates) / n
    num = sum((i - xm) * (r - ym) for i, r in enumerate(rates))
    den = sum((i - xm) ** 2 for i in range(n))
    change = num / den * (n - 1)  # req/s over the span covered by the history
    return _clip(change / scale, -1.0, 1.0)


def load_variance(rates: list[float]) -> float:
    """Coefficient of variation (std / mean) of the offered rate, clipped to [0, 1]."""
    n = len(rates)
    if n < 2:
        return 0.0
    m = sum(rates) / n
    if m <= 1e-9:
        return 0.0
    var = sum((r - m) ** 2 for r in rates) / n
    return _clip(math.sqrt(var) / m, 0.0, 1.0)


class ObservationPreset(ABC):
    """Base: a Box space and `observe(window, state)`; `initial(state)` before any window.

    Features, bounds and space are per instance: they are laid out over the scenario's
    pools (`EnvContext.layout`), so the names of per-pool features follow the pools."""

    name: ClassVar[str]
    needs_platform: ClassVar[bool] = False  # only for scenarios with a platform section

    def __init__(self, ctx: EnvContext) -> None:
        self.ctx = ctx
        self.features, self.low, self.high = self._layout(ctx)
        self.space = spaces.Box(np.asarray(self.low, np.float32), np.asarray(self.high, np.float32),
                                dtype=np.float32)  # fmt: skip

    @abstractmethod
    def _layout(self, ctx: EnvContext) -> Layout:
        """(feature names, lower bounds, upper bounds)."""

    @abstractmethod
    def observe(self, w: Window | None, st: EnvState) -> np.ndarray:
        """The observation vector after window `w` (None: before the first step)."""


OBSERVATIONS: dict[str, type[ObservationPreset]] = {}


register = registrar(OBSERVATIONS)


def _share(n: int, mx: int | None) -> float:
    return n / mx if mx else 0.0


@register
class Default(ObservationPreset):
    """The seed spec's features: utilisations, p95 / SLO, throughput, desired replicas per
    pool / max_replicas, load trend and variance, progress. Over the seed layout (gpu, cpu)
    these are the seed's ten; over N other pools, 8 + N."""

    name = "default"

    def _layout(self, ctx: EnvContext) -> Layout:
        n = len(ctx.layout)
        features = ("cpu_util", "mem_util", "gpu_util", "p95_over_slo", "throughput",
                    *(f"{p}_replicas" for p in ctx.layout),
                    "load_trend", "load_variance", "progress")  # fmt: skip
        low = (0.0, 0.0, 0.0, 0.0, 0.0, *(0.0,) * n, -1.0, 0.0, 0.0)
        high = (1.0, 1.0, 1.0, LATENCY_CAP, THROUGHPUT_CAP, *(1.0,) * n, 1.0, 1.0, 1.0)
        return features, low, high

    def _base(self, w: Window | None, st: EnvState) -> list[float]:
        ctx = self.ctx
        mx = ctx.max_replicas
        reps = [_share(st.desired.get(p, 0), mx.get(p)) for p in ctx.layout]
        progress = _clip(st.t / ctx.duration_s, 0.0, 1.0)
        if w is None:
            return [0.0, 0.0, 0.0, 0.0, 0.0, *reps, 0.0, 0.0, progress]
        tp = w.throughput_rps
        return [
            _util(w.cpu_util),
            _util(w.mem_util),
            _util(w.gpu_util),
            latency_ratio(w, ctx.slo_ms),
            0.0 if tp != tp else _clip(tp / ctx.throughput_scale, 0.0, THROUGHPUT_CAP),
            *reps,
            load_trend(st.rates, ctx.throughput_scale),
            load_variance(st.rates),
            progress,
        ]

    def observe(self, w: Window | None, st: EnvState) -> np.ndarray:
        return np.asarray(self._base(w, st), np.float32)


@register
class Extended(Default):
    """`default` plus what a cluster operator also sees: ready and Pending pods per pool,
    errors, queue, placement (one-hot over `routing.placements`) and the HPA target (0
    without an HPA). Over the seed layout, 20 features."""

    name = "extended"

    def _layout(self, ctx: EnvContext) -> Layout:
        features, low, high = super()._layout(ctx)
        extra = (*(f"{p}_ready" for p in ctx.layout), *(f"{p}_pending" for p in ctx.layout),
                 "error_rate", "queue", *(pl.replace("-", "_") for pl in ctx.placements),
                 "hpa_target")  # fmt: skip
        return features + extra, low + (0.0,) * len(extra), high + (1.0,) * len(extra)

    def observe(self, w: Window | None, st: EnvState) -> np.ndarray:
        base = self._base(w, st)
        ctx = self.ctx
        mx = {p: ctx.max_replicas.get(p, 0) or 1 for p in ctx.layout}
        onehot = [1.0 if st.placement == p else 0.0 for p in ctx.placements]
        hpa = st.hpa_target if st.hpa_target is not None else 0.0
        if w is None:
            ready = [ctx.initial_replicas.get(p, 0) / mx[p] for p in ctx.layout]
            return np.asarray(base + ready + [0.0] * len(ctx.layout) + [0.0, 0.0] + onehot + [hpa],
                              np.float32)  # fmt: skip
        answered = w.served + w.errors
        recs = [w.pools.get(p) for p in ctx.layout]
        extra = [
            *(_clip(r.ready / mx[p], 0.0, 1.0) if r else 0.0
              for p, r in zip(ctx.layout, recs, strict=True)),
            *(_clip(r.pending / mx[p], 0.0, 1.0) if r else 0.0
              for p, r in zip(ctx.layout, recs, strict=True)),
            w.errors / answered if answered else 0.0,
            _clip(w.queue_length / max(ctx.throughput_scale, 1.0), 0.0, 1.0),
        ]
        return np.asarray(base + extra + onehot + [hpa], np.float32)


STALE_HORIZON_S = 300.0
"""Prometheus' default lookback delta (5 min): a gauge missing this long is gone from queries,
so `metrics_stale` reaches 1 there."""


class StaleMetrics:
    """Last utilisations Prometheus gave, and since when they are missing (see module doc)."""

    def __init__(self, ctx: EnvContext) -> None:
        self.gpu_pools = [p for p in ctx.layout if ctx.kinds.get(p) == "gpu"]
        self.reset()

    def reset(self) -> None:
        self.last = {"cpu_util": 0.0, "mem_util": 0.0, "gpu_util": 0.0}
        self.fresh_at = 0.0

    def fill(self, w: Window) -> tuple[Window, float]:
        """`w` with missing utilisations replaced by their last values, and the staleness."""
        ready = sum(r.ready for r in w.pools.values())
        gpu_ready = sum(w.pools[p].ready for p in self.gpu_pools if p in w.pools)
        expected = {"cpu_util": ready > 0, "mem_util": ready > 0, "gpu_util": gpu_ready > 0}
        fix: dict[str, float] = {}
        complete = True
        for name, want in expected.items():
            v = getattr(w, name)
            if v == v:  # not NaN
                self.last[name] = v
            elif want:
                fix[name] = self.last[name]
                complete = False
        if complete:
            self.fresh_at = w.t_end
        stale = _clip((w.t_end - self.fresh_at) / STALE_HORIZON_S, 0.0, 1.0)
        return (dataclasses.replace(w, **fix) if fix else w), stale


class _Stale(ObservationPreset):
    """Mixin before a preset: the last utilisations when metrics are missing, plus
    `metrics_stale` as the last feature."""

    def __init__(self, ctx: EnvContext) -> None:
        self.memory = StaleMetrics(ctx)
        super().__init__(ctx)

    def _layout(self, ctx: EnvContext) -> Layout:
        features, low, high = super()._layout(ctx)
        return features + ("metrics_stale",), low + (0.0,), high + (1.0,)

    def observe(self, w: Window | None, st: EnvState) -> np.ndarray:
        if w is None:
            self.memory.reset()
            return np.append(super().observe(None, st), np.float32(0.0))
        filled, stale = self.memory.fill(w)
        return np.append(super().observe(filled, st), np.float32(stale))


@register
class DefaultStale(_Stale, Default):
    """`default` with the last utilisations when metrics are missing, plus `metrics_stale`."""

    name = "default-stale"


@register
class ExtendedStale(_Stale, Extended):
    """`extended` with the last utilisations when metrics are missing, plus `metrics_stale`."""

    name = "extended-stale"

"""What the env's presets share: scenario constants (`EnvContext`) and episode state (`EnvState`).

`EnvContext` is derived once per scenario (pydantic is never touched per step);
`EnvState` is the agent-side view of the cluster that delta actions are applied to
(desired replicas, placement, pod templates, HPA target) plus the offered-load history
behind the trend and variance features. Both are plain slotted classes: the env's hot
path reads attributes and small dicts only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kisim.core.config import SEED_POOLS, EnvConfig, Scenario
from kisim.core.patterns import PATTERNS, make_pattern
from kisim.core.prices import pool_rates
from kisim.env.platform_view import PlatformContext, PlatformView, platform_context

PATTERN_SCALE_EXCLUDE = frozenset({"replay", "trace"})  # need a file; counted if the scenario's


@dataclass(slots=True)
class Template:
    """The pod template settings the `resources` action moves."""

    cpu: float
    memory_gib: float
    max_batch_size: int
    instances: int


@dataclass(frozen=True, slots=True)
class EnvContext:
    """Constants of one scenario as the env sees it (see docs/environment.md)."""

    slo_ms: float
    duration_s: float
    step_s: float
    pools: tuple[str, ...]  # the scenario's pools (`Scenario.pool_names`: GPU pools first)
    layout: tuple[str, ...]  # the pools presets are laid out over (`preset_pools`)
    kinds: dict[str, str]  # pool -> device kind (gpu | cpu)
    placements: tuple[str, ...]  # `routing.placements`, as the replicas action numbers them
    min_replicas: dict[str, int]
    max_replicas: dict[str, int]
    initial_replicas: dict[str, int]
    templates: dict[str, Template]  # the scenario's templates (episode start)
    placement: str
    hpa_target: float | None  # None when the scenario has no in-cluster HPA
    throughput_scale: float  # req/s that the throughput feature maps to 1
    demand_per_level: float  # req/s per unit of pattern level (per user, or 1 open loop)
    prices: dict[str, float]
    cost_max: float  # price-weighted replicas with every pool at max_replicas
    history: int
    cfg: EnvConfig
    rungs: tuple[int, ...]  # pods each replicas-action index adds (`rungs`)
    money_rates: dict[str, float] = field(default_factory=dict)  # money per pod-hour by pool
    money_max: float = 1e-9  # money per hour with every pool at max_replicas
    platform: PlatformContext | None = None  # the shared platform's constants, when there is one
    mean_demand_rps: float = 1.0  # a pattern's mean demand (`mean_demand`; one per pattern)


def ideal_cycle_s(sc: Scenario) -> float:
    """Fastest request cycle of a closed-loop user: mean think time + fastest answer."""
    lo, hi = sc.traffic.wait_time_s
    fastest = min(
        (d.overhead_ms + d.service.time_ms(1)) * 1e-3
        for d in (sc.calibration.devices[p.device] for p in sc.pools.values())
    )
    return (lo + hi) / 2 + fastest


def demand_per_level(sc: Scenario) -> float:
    """req/s one unit of pattern level asks for: 1/ideal cycle per user, or 1 (open loop)."""
    return 1.0 / ideal_cycle_s(sc) if sc.traffic.mode == "closed" else 1.0


def throughput_scale(sc: Scenario) -> float:
    """The largest demand of any registered pattern over the episode, in req/s.

    Every registered pattern (with the scenario's `pattern_params` overrides, seed 0),
    plus the scenario's own, so that one scenario gives one scale whichever pattern an
    episode runs: a policy trained on several patterns sees the same normalisation in
    evaluation. `env.throughput_scale_rps` overrides it.
    """
    if sc.env.throughput_scale_rps is not None:
        return float(sc.env.throughput_scale_rps)
    own = sc.traffic.pattern
    specs = {own.name: own.params}
    for name in PATTERNS:
        if name not in specs and name not in PATTERN_SCALE_EXCLUDE:
            specs[name] = sc.traffic.pattern_params.get(name, {})
    peak = 0.0
    for name, params in specs.items():
        try:
            pat = make_pattern(name, params, 0)
        except Exception:  # noqa: BLE001 - a pattern that cannot be built does not set the scale
            continue
        peak = max(peak, pat.peak(sc.duration_s, 1.0))
    return max(peak * demand_per_level(sc), 1.0)


def mean_demand(sc: Scenario) -> float:
    """The mean demand of the scenario's pattern over the episode (seed 0, the level at each
    step's middle), in req/s: what an average step is asked, so a step's misses can be
    counted against it (the `cost_requests` reward)."""
    try:
        pat = make_pattern(sc.traffic.pattern.name, sc.traffic.pattern.params, 0)
    except Exception:  # noqa: BLE001 - as in `throughput_scale`: no pattern, no scale
        return 1.0
    return max(pat.mean(sc.duration_s, sc.env.step_s) * demand_per_level(sc), 1e-9)


def preset_pools(sc: Scenario) -> tuple[str, ...]:
    """The pools the observation and action presets are laid out over: the seed layout's
    (``gpu``, ``cpu``) when the scenario's pools are among those two names, so the seed's
    10-dim observation and `MultiDiscrete([5, 5, 3])` stay as they are (an absent one reads
    0 and ignores its moves); otherwise the scenario's own pools, GPU pools first."""
    return SEED_POOLS if sc.seed_layout else sc.pool_names


def build_context(sc: Scenario) -> EnvContext:
    cfg = sc.env
    pools = sc.pool_names
    prices = {p: sc.pool_price(p) for p in pools}
    return EnvContext(
        slo_ms=sc.slo_ms,
        duration_s=sc.duration_s,
        step_s=cfg.step_s,
        pools=pools,
        layout=preset_pools(sc),
        kinds={p: sc.pool_kind(p) for p in pools},
        placements=sc.routing.placements,
        min_replicas={p: sc.pools[p].min_replicas for p in pools},
        max_replicas={p: sc.pools[p].max_replicas for p in pools},
        initial_replicas={p: sc.pools[p].replicas for p in pools},
        templates={
            p: Template(sc.pools[p].resources.cpu, sc.pools[p].resources.memory_gib,
                        sc.pools[p].batching.max_batch_size, sc.pools[p].instances)
            for p in pools
        },  # fmt: skip
        placement=sc.routing.placement,
        hpa_target=(sc.controller.hpa.target_cpu_utilization
                    if sc.controller.name == "hpa" else None),  # fmt: skip
        throughput_scale=throughput_scale(sc),
        demand_per_level=demand_per_level(sc),
        prices=prices,
        cost_max=max(sum(prices[p] * sc.pools[p].max_replicas for p in pools), 1e-9),
        history=cfg.history_steps,
        cfg=cfg,
        rungs=rungs(cfg),
        money_rates=(rates := pool_rates(sc)),
        money_max=max(sum(rates[p] * sc.pools[p].max_replicas for p in pools), 1e-9),
        platform=platform_context(sc),
        mean_demand_rps=mean_demand(sc),
    )


def rungs(cfg: EnvConfig) -> tuple[int, ...]:
    """Pods each index of a pool's replicas action adds: -large, -small, 0, +small, +large
    (`env.replica_steps`; the default is the seed's -2..+2)."""
    small, large = cfg.replica_steps
    return (-large, -small, 0, small, large)


@dataclass(slots=True)
class EnvState:
    """The agent's view of what it controls, and the recent offered load."""

    desired: dict[str, int]
    placement: str
    hpa_target: float | None
    templates: dict[str, Template]
    rates: list[float] = field(default_factory=list)  # offered req/s of the last steps
    t: float = 0.0
    steps: int = 0
    platform: PlatformView | None = None  # the shared platform after the last step, if any
    floors: dict[str, int] = field(default_factory=dict)  # min-scale per pool (`min-scale`)
    pending: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # (floor, from t)

    def floors_at(self, t: float) -> dict[str, int]:
        """The min-scale per pool at `t`: the pending entries whose time has come take effect."""
        for pool, entries in self.pending.items():
            while entries and t >= entries[0][1] - 1e-9:
                self.floors[pool] = entries.pop(0)[0]
        return self.floors

    @classmethod
    def initial(cls, ctx: EnvContext) -> EnvState:
        return cls(
            desired=dict(ctx.initial_replicas),
            placement=ctx.placement,
            hpa_target=ctx.hpa_target,
            templates={p: Template(t.cpu, t.memory_gib, t.max_batch_size, t.instances)
                       for p, t in ctx.templates.items()},  # fmt: skip
            floors=dict(ctx.min_replicas),
        )


def finite(x: float, default: float) -> float:
    """`x`, or `default` when x is NaN or infinite."""
    return x if math.isfinite(x) else default

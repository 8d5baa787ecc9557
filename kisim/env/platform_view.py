"""The env's view of a scenario's shared platform (`kisim.core.platform`, `twin.platform`).

`PlatformContext` holds the platform's constants the presets normalise by (models, node
pools, tenants, their bounds, rates and quotas, the largest bill); `PlatformView` is one step
of the platform as the backend reports it (`PlatformControl.platform_state`: gauges and
cumulative counters), with the step's differences already taken: per model the requests that
arrived, were answered within their SLO or missed it, the busy fraction; per tenant the
workflows completed; the money the nodes cost in the step. It also carries what the agent
set and keeps between steps (node-pool floors, held tenant queues). `PlatformMove` is what a
platform action asks of the backend (`PlatformControl.platform_control`).

Nothing here looks inside the twin: everything comes from ``platform_state()``'s keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kisim.core.config import Scenario
from kisim.core.platform import node_hour_price

QUEUE_CAP = 200
"""Requests a model's queue feature maps to 1 when the model has no max_queue_size."""
STEPS_CAP = 20.0
"""Waiting step workloads (per tenant) and pending pods that map to 1."""


@dataclass(frozen=True, slots=True)
class PlatformContext:
    """Constants of a scenario's platform section, in the order presets lay them out."""

    models: tuple[str, ...]
    tenant_of: dict[str, str]  # model -> tenant
    min_replicas: dict[str, int]
    max_replicas: dict[str, int]
    rate_rps: dict[str, float]  # model arrival rate at the pattern's peak
    queue_cap: dict[str, int]
    pools: tuple[str, ...]
    min_nodes: dict[str, int]
    max_nodes: dict[str, int]
    tenants: tuple[str, ...]
    quota_cpu: dict[str, float]
    quota_gpu: dict[str, float]
    max_queued: dict[str, int]
    workflows_per_hour: float  # submissions per hour over every tenant
    cost_max_per_hour: float  # money per hour with every pool at max_nodes
    gpu_slots: dict[str, tuple[int, int]]  # time-shared GPU model -> (its slots, a whole GPU's)


def platform_context(sc: Scenario) -> PlatformContext | None:
    """The platform's constants, or None when the scenario has no platform section."""
    p = sc.platform
    if p is None:
        return None
    m = p.models
    return PlatformContext(
        models=tuple(m),
        tenant_of={k: v.tenant for k, v in m.items()},
        min_replicas={k: v.min_replicas for k, v in m.items()},
        max_replicas={k: v.max_replicas for k, v in m.items()},
        rate_rps={k: v.rate_rps for k, v in m.items()},
        queue_cap={k: v.max_queue_size or QUEUE_CAP for k, v in m.items()},
        pools=tuple(p.node_pools),
        min_nodes={k: v.min_nodes for k, v in p.node_pools.items()},
        max_nodes={k: v.max_nodes for k, v in p.node_pools.items()},
        tenants=tuple(p.tenants),
        quota_cpu={k: v.quota_cpu for k, v in p.tenants.items()},
        quota_gpu={k: v.quota_gpu for k, v in p.tenants.items()},
        max_queued={k: v.max_queued for k, v in p.tenants.items()},
        workflows_per_hour=sum(sum(t.workflows.values()) for t in p.tenants.values()),
        cost_max_per_hour=max(sum(node_hour_price(s, sc.prices) * s.max_nodes
                                  for s in p.node_pools.values()), 1e-9),  # fmt: skip
        gpu_slots={k: (v.gpu, p.node_pools[v.node_pool].sharing.replicas) for k, v in m.items()
                   if v.gpu > 0 and p.node_pools[v.node_pool].sharing.mode == "time-slicing"
                   and p.node_pools[v.node_pool].sharing.replicas > v.gpu},  # fmt: skip
    )


@dataclass(frozen=True, slots=True)
class PlatformMove:
    """What a platform action asks: per-model replicas, node-pool floors, held queues, GPU
    slots per model pod."""

    replicas: dict[str, int] = field(default_factory=dict)
    pool_floor: dict[str, int] = field(default_factory=dict)
    hold: dict[str, bool] = field(default_factory=dict)
    gpu: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.replicas or self.pool_floor or self.hold or self.gpu)


def _share(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0


@dataclass(slots=True)
class PlatformView:
    """One step of the platform: the state after it and the differences over it."""

    pc: PlatformContext
    now: dict[str, float]
    before: dict[str, float]
    dt: float
    floor: dict[str, int]  # node-pool floors the agent keeps (start: min_nodes)
    hold: dict[str, bool]  # tenant queues the agent holds

    @classmethod
    def first(cls, pc: PlatformContext, state: dict[str, float]) -> PlatformView:
        """The view before the first step (no differences yet)."""
        return cls(pc, state, state, 0.0, dict(pc.min_nodes), dict.fromkeys(pc.tenants, False))

    def next(self, state: dict[str, float], dt: float) -> PlatformView:
        """The view after a step of `dt` seconds that ended in `state`."""
        return PlatformView(self.pc, state, self.now, dt, self.floor, self.hold)

    def delta(self, key: str) -> float:
        return self.now[key] - self.before[key]

    # ------------------------------------------------------------------ per model

    def requests(self, m: str) -> tuple[float, float]:
        """(requests settled in the step: answered or rejected, of them within the SLO)."""
        n = self.delta(f"model_{m}_answered") + self.delta(f"model_{m}_rejected")
        return n, self.delta(f"model_{m}_within_slo")

    def miss(self, m: str) -> float:
        """Share of the step's settled requests that missed the SLO or were rejected, in
        [0, 1]; a model with queued requests and none settled is stalled: 1."""
        n, ok = self.requests(m)
        if n <= 0:
            return 1.0 if self.now[f"model_{m}_queue"] > 0 else 0.0
        return min(max(1.0 - ok / n, 0.0), 1.0)

    def load(self, m: str) -> float:
        """Arrival rate over the step / the model's rate at the pattern's peak."""
        return _share(self.delta(f"model_{m}_arrived"), self.dt * self.pc.rate_rps[m])

    def busy(self, m: str) -> float:
        """Busy fraction of the model's ready replicas over the step, in [0, 1]."""
        ready = max(self.now[f"model_{m}_ready"], self.before[f"model_{m}_ready"])
        return min(_share(self.delta(f"model_{m}_busy_s"), ready * self.dt), 1.0)

    def desired(self, m: str) -> int:
        return int(self.now[f"model_{m}_desired"])

    # ------------------------------------------------------------------ per tenant

    def tenant_miss(self, t: str) -> tuple[float, float]:
        """(requests of `t`'s models settled in the step, of them missed)."""
        n = missed = 0.0
        for m in self.pc.models:
            if self.pc.tenant_of[m] == t:
                k, ok = self.requests(m)
                n += k
                missed += k - ok
        return n, missed

    def completed(self, t: str) -> float:
        return self.delta(f"tenant_{t}_completed")

    # ------------------------------------------------------------------ cluster

    def cost_rate(self) -> float:
        """Node money per hour over the step / the same with every pool at max_nodes."""
        if self.dt <= 0:
            return 0.0
        return min(self.delta("cost") * 3600.0 / self.dt / self.pc.cost_max_per_hour, 1.0)


__all__ = ["PlatformContext", "PlatformMove", "PlatformView", "platform_context"]

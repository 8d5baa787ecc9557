"""A Knative-style autoscaler (KPA) per pool: stable and panic windows on concurrency.

Mirrors ``knative/serving`` ``pkg/autoscaler/scaling/autoscaler.go`` (`Scale`) with its
defaults: stable window 60 s, panic window 10 % of it (6 s), panic threshold 200 %,
max scale-up rate 1000, max scale-down rate 2, target utilisation 70 %:

    desired_stable = ceil(avg concurrency over 60 s / target)
    desired_panic  = ceil(avg concurrency over 6 s / target)
    both clamped to [floor(ready / 2), ceil(1000 x ready)]
    panic starts (or is extended) when panic concurrency / target >= 2 x ready pods,
    and ends 60 s after the last time it was over the threshold;
    in panic: desired = max(desired_stable, desired_panic, the most it asked in this
    panic) - never down; else desired = desired_stable.

Cadence: Knative's autoscaler runs in the cluster and ticks every 2 s; so does this
one. It is an *inner controller* of the env (`kisim.env.environment.InnerController`): the agent
step stays the scenario's (30 s, action preset ``none``) and inside each step the env
hands the KPA every 2 s Window (one concurrency sample) and applies the replica counts
it returns at once. So the KPA reacts at Knative's speed while its episode is scored
on the same steps and reward as every other policy.

Concurrency (what the queue-proxy would report) is estimated from the Window by
Little's law: in-flight = throughput x mean latency, or the queue length at the end of
the window when larger (a stalled service completes nothing); it is split between the
pools by the routing rule in force (placement share, or by ready endpoints). The target
per pod is ``max_batch_size x instances x 0.7`` (Triton's useful concurrency at 70 %
utilisation); every pool keeps at least one pod (``min-scale: 1``; scale-to-zero and
the activator are not modelled).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.policies.base import Policy, parse_float
from agents.policies.params import Field, parse_params
from kisim.core.backend import Action, PoolSetting
from kisim.core.config import Scenario, override
from kisim.core.routing import RouteTable
from kisim.core.window import Window

TICK_S = 2.0


@dataclass
class PoolKPA:
    """Knative's per-revision autoscaler state for one pool."""

    target: float  # concurrency per pod
    stable_n: int  # samples in the stable window
    panic_n: int
    min_scale: int
    max_scale: int
    panic_threshold: float = 2.0
    max_up_rate: float = 1000.0
    max_down_rate: float = 2.0
    stable_s: float = 60.0
    samples: deque = field(default_factory=deque)
    panic_since: float | None = None  # Knative's panicTime (last time over the threshold)
    max_panic_pods: int = 0

    @property
    def panicking(self) -> bool:
        return self.panic_since is not None

    def decide(self, now: float, concurrency: float, ready: int) -> int:
        s = self.samples
        s.append(concurrency)
        while len(s) > self.stable_n:
            s.popleft()
        stable = sum(s) / len(s)
        recent = list(s)[-self.panic_n :]
        panic = sum(recent) / len(recent)
        ready = max(ready, 1)
        up_cap = math.ceil(self.max_up_rate * ready)
        down_floor = math.floor(ready / self.max_down_rate)
        d_stable = min(max(math.ceil(stable / self.target), down_floor), up_cap)
        d_panic = min(max(math.ceil(panic / self.target), down_floor), up_cap)
        over = panic / self.target / ready >= self.panic_threshold
        if over:
            self.panic_since = now
        elif self.panic_since is not None and now > self.panic_since + self.stable_s:
            self.panic_since = None
            self.max_panic_pods = 0
        desired = d_stable
        if self.panic_since is not None:
            desired = max(desired, d_panic)
            if desired > self.max_panic_pods:
                self.max_panic_pods = desired
            else:
                desired = self.max_panic_pods
        return min(max(desired, self.min_scale), self.max_scale)


def concurrency(w: Window) -> float:
    """Mean requests in the service over the window (Little's law), or the queue if larger."""
    little = 0.0
    if w.served and w.latency_mean_ms == w.latency_mean_ms:
        little = w.throughput_rps * w.latency_mean_ms * 1e-3
    return max(little, float(w.queue_length))


def pool_shares(routes: RouteTable, w: Window) -> dict[str, float]:
    """Fraction of requests the Service sends to each pool (`twin.kernel._route`'s rule, in
    closed form: `kisim.core.routing.RouteTable.shares`) with the Window's ready pods."""
    return routes.shares(w.placement, {p: r.ready for p, r in w.pools.items()})


class KPA(Policy):
    name = "kpa"
    arg_help = ("target utilisation of the per-pod concurrency in (0, 1], default 0.7"
                "[:stable window s (60; the panic window is 10 %)[:panic threshold (2 = 200 %)]]")
    action = "none"
    period_s = TICK_S
    extra = (Field("stable_s", 60.0, 2 * TICK_S, 3600.0, lo_incl=True),
             Field("panic", 2.0, 1.0, 100.0, lo_incl=True))  # fmt: skip

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        parts = arg.split(":") if arg is not None else []
        self.utilisation = parse_float(f"kpa:{arg}", parts[0], 0.0, 1.0) if parts else 0.7
        p = parse_params(f"kpa:{parts[0] if parts else ''}", ":".join(parts[1:]) or None,
                         self.extra)  # fmt: skip
        self.stable_s, self.panic_threshold = p["stable_s"], p["panic"]

    def scenario(self, sc: Scenario) -> Scenario:
        return override(sc, f"policy {self.name}", **{"controller.name": "external"})

    def reset(self, scenario: Scenario) -> None:
        self.sc = scenario
        self.routes = RouteTable(scenario)
        stable_n = round(self.stable_s / TICK_S)
        self.pools = {
            pool: PoolKPA(
                target=cfg.batching.max_batch_size * cfg.instances * self.utilisation,
                stable_n=stable_n, panic_n=max(1, round(self.stable_s * 0.1 / TICK_S)),
                min_scale=max(1, cfg.min_replicas), max_scale=cfg.max_replicas,
                panic_threshold=self.panic_threshold, stable_s=self.stable_s,
            )
            for pool, cfg in ((p, scenario.pools[p]) for p in scenario.pool_names)
        }  # fmt: skip
        self.log: list[tuple[float, str, bool, int]] = []  # (t, pool, panicking, desired)

    def tick(self, w: Window, t: float) -> Action | None:
        """One 2 s decision from one 2 s Window."""
        c = concurrency(w)
        shares = pool_shares(self.routes, w)
        floors = self.floors(w, t)
        settings: dict[str, PoolSetting] = {}
        for pool, kpa in self.pools.items():
            part = c * shares[pool]
            rec = w.pool(pool)
            current = rec.desired
            want = kpa.decide(t, part, rec.ready)
            want = max(want, min(floors.get(pool, 0), kpa.max_scale))  # min-scale, applied after
            self.log.append((t, pool, kpa.panicking, want))
            if want != current:
                settings[pool] = PoolSetting(replicas=want)
        return Action(pools=settings) if settings else None

    def floors(self, w: Window, t: float) -> dict[str, int]:
        """A min-scale per pool set from outside the KPA (`agents.policies.cron`); none."""
        return {}

    def act(self, obs: np.ndarray, w: Window | None, t: float) -> Any:
        return 0

"""`TwinBackend`: the digital twin behind the `Backend` protocol.

reset(scenario, seed) builds a fresh SimPy world (data plane, scheduler, pods,
Prometheus view, in-cluster controller, load shaper, Deployment rollouts); advance(dt)
runs it and reports a `Window`; apply(action) changes Deployments (replicas, and the pod
template through a rolling update: `twin.rollout`), placement or the HPA target.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kisim.core.backend import Action, Applied, PodView
from kisim.core.config import Scenario
from kisim.core.errors import BackendError
from kisim.core.hpa import PodSample
from kisim.core.prices import pool_rates
from kisim.core.records import LatencyRecords
from kisim.core.sketch import LatencySketch
from kisim.core.window import Latencies, PoolReplicas, Utilisation, Window
from twin.clock import TwinClock
from twin.controllers import HPAController
from twin.dataplane import DataPlane
from twin.faults import FaultInjector
from twin.latency_stats import window_figures
from twin.observe import Observer
from twin.pods import PodManager
from twin.rollout import Rollouts
from twin.scheduler import Scheduler
from twin.traffic import build_pattern, shaper


class TwinBackend:
    """A SimPy twin of Triton replicas on Kubernetes; same seed, same numbers."""

    def __init__(self) -> None:
        self.scenario: Scenario | None = None
        self._lat: list[np.ndarray] = []
        self._lat_sorted: list[np.ndarray] = []  # each window's latencies, sorted (exact mode)
        self._wait: list[np.ndarray] = []
        self._sketch = False  # metrics.latency_stats: sketch (the run's sketches, merged)
        self._lat_sk = LatencySketch()
        self._wait_sk = LatencySketch()
        self.batches = 0
        self.batch_items = 0
        self._pct = np.zeros(5)  # the window's mean, p50, p95, p99 latency, mean wait (ms)

    # ------------------------------------------------------------------ Backend protocol

    def reset(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        self.seed = seed
        self.dp = DataPlane(scenario, seed)
        self.env = TwinClock(self.dp)
        self.sched = Scheduler(scenario.cluster)
        self.pods = PodManager(self.env, self.dp, self.sched, scenario, seed)
        self.obs = Observer(self.env, self.pods, scenario.metrics)
        self.pattern = build_pattern(scenario, seed)
        self.hpa = (
            HPAController(self.env, self.pods, self.obs, scenario)
            if scenario.controller.name == "hpa"
            else None
        )
        self.faults = (FaultInjector(self.env, self.pods, self.sched, self.obs, self.dp,
                                     scenario, seed)
                       if scenario.faults.active else None)  # fault-free runs: no fault paths
        self._lat, self._lat_sorted, self._wait = [], [], []
        self._lat_sk, self._wait_sk = LatencySketch(), LatencySketch()
        self._sketch = self.dp.sketch
        self.batches = self.batch_items = 0
        self._t_last = 0.0
        self._pools = scenario.pool_names  # a property that sorts the pools: read once a run
        self._acc = {**{pool: 0.0 for pool in self._pools}, "pending": 0.0}
        self._rates = pool_rates(scenario)  # money per pod-hour (the scenario's templates)
        for pool, cfg in scenario.pools.items():  # the run starts on a warm service
            self.pods.scale(pool, cfg.replicas, warm=True)
        self.env.process(shaper(self.env, self.dp, scenario, self.pattern))
        self.rollouts = Rollouts(self.pods, self.dp)
        self.platform = None if scenario.platform is None else _platform(self, scenario, seed)

    @property
    def now(self) -> float:
        return float(self.env.now)

    def apply(self, action: Action) -> Applied:
        assert self.scenario is not None
        clamped: dict[str, str] = {}
        set_to: dict[str, int] = {}
        for pool, setting in action.pools.items():
            cfg = self.scenario.pools.get(pool)
            if cfg is None or setting.replicas is None:
                continue
            n = min(max(setting.replicas, cfg.min_replicas), cfg.max_replicas)
            if n != setting.replicas:
                bound = "max" if setting.replicas > n else "min"
                clamped[f"{pool}.replicas"] = f"{setting.replicas} -> {n} ({bound}_replicas)"
            if n != self.pods.desired[pool]:
                self.pods.scale(pool, n)
            set_to[pool] = n
        if action.placement is not None:
            self.dp.set_placement(action.placement)
        if action.hpa_target is not None and self.hpa is not None:
            self.hpa.set_target(action.hpa_target)
        clamped.update(self.rollouts.apply(action.pools))  # template changes roll out last
        return Applied(replicas=set_to or dict(self.pods.desired), clamped=clamped)

    def advance(self, dt: float) -> Window:
        if self.scenario is None:
            raise BackendError("advance() before reset()")
        t0 = self.env.now
        self.env.run(until=t0 + dt)
        return self._window(t0, self.env.now)

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ reporting

    def _window(self, t0: float, t1: float) -> Window:
        assert self.scenario is not None
        w = self.dp.cut(fresh=False)  # exact mode: views, copied in `window_figures`
        latency = Latencies(math.nan, math.nan, math.nan, math.nan)
        wait_ms = math.nan
        if isinstance(w.lats, LatencySketch) and isinstance(w.waits, LatencySketch):
            self._lat_sk.merge(w.lats)
            self._wait_sk.merge(w.waits)
            if len(w.lats):
                p50, p95, p99 = w.lats.quantiles((0.5, 0.95, 0.99))
                latency = Latencies(w.lats.mean() * 1e3, p50 * 1e3, p95 * 1e3, p99 * 1e3)
                wait_ms = w.waits.mean() * 1e3
        else:
            lat, wait = np.asarray(w.lats), np.asarray(w.waits)
            if len(lat):  # copies, sorted latencies, figures: one compiled call
                lat, wait, ordered = window_figures(lat, wait, self._pct)
                self._lat_sorted.append(ordered)
                p = self._pct
                latency = Latencies(float(p[0]), float(p[1]), float(p[2]), float(p[3]))
                wait_ms = float(p[4])
            else:
                lat, wait = np.empty(0), np.empty(0)
            self._lat.append(lat)
            self._wait.append(wait)
        self.batches += w.batches
        self.batch_items += w.items
        self.pods.accrue()
        rs = self.pods.replica_s
        pools = self._pools
        acc = {**{pool: rs.get(pool, 0.0) for pool in pools}, "pending": self.pods.pending_s}
        spent = {k: v - self._acc[k] for k, v in acc.items()}  # since the last window
        self._acc = acc
        util = Utilisation(*self.obs.utilisation())
        replicas = {pool: PoolReplicas(*self.pods.counts(pool)) for pool in pools}
        return Window.measured(
            t_start=t0,
            t_end=t1,
            load_level=self.pattern.level(t1),
            offered=w.offered,
            served=w.served,
            errors=w.errors,
            latency_ms=latency,
            slow=w.slow,
            queue_wait_ms=wait_ms,
            util=util,
            replicas=replicas,
            replica_s=spent,
            pending_pod_s=spent["pending"],
            queue_length=self.dp.queue_length(),
            mean_batch_size=w.items / w.batches if w.batches else math.nan,
            placement=self.dp.placement,
            price_per_hour=self._rates,
        )

    def latencies(self) -> np.ndarray | LatencySketch:
        """Every request's latency (s), or their sketch (`metrics.latency_stats: sketch`)."""
        if self._sketch:
            return self._lat_sk
        return LatencyRecords.of(np.concatenate(self._lat) if self._lat else np.empty(0),
                                 self._lat_sorted)  # the windows' sorted copies, so far

    def waits(self) -> np.ndarray | LatencySketch:
        """Every request's queue wait (s), or their sketch."""
        if self._sketch:
            return self._wait_sk
        return np.concatenate(self._wait) if self._wait else np.empty(0)

    def platform_summary(self) -> dict[str, float]:
        """The shared platform's figures (`twin.platform.report`); none without a platform."""
        if getattr(self, "platform", None) is None:
            return {}
        from twin.platform.report import platform_summary

        return platform_summary(self.platform, float(self.env.now))

    def platform_state(self) -> dict[str, float]:
        """The platform as an outside controller sees it (`PlatformWorld.state`)."""
        if getattr(self, "platform", None) is None:
            raise BackendError("this scenario has no platform section")
        return dict(self.platform.state())

    def platform_control(self, replicas: dict[str, int] | None = None,
                         pool_floor: dict[str, int] | None = None,
                         hold: dict[str, bool] | None = None,
                         gpu: dict[str, int] | None = None) -> dict[str, int]:  # fmt: skip
        """Per-model replicas, node-pool floors, held tenant queues and GPU slots per pod
        (`PlatformWorld.control`)."""
        if getattr(self, "platform", None) is None:
            raise BackendError("this scenario has no platform section")
        return dict(self.platform.control(replicas, pool_floor, hold, gpu))

    @property
    def in_cluster_hpa(self) -> bool:
        """The twin runs controller `hpa` inside (`twin.controllers.HPAController`)."""
        return True

    def pod_metric(self, pool: str, metric: str,
                   range_s: float) -> tuple[list[PodSample], dict[str, float]]:  # fmt: skip
        """A custom per-pod metric as the HPA's custom-metrics API serves it, with the pool's
        pods as the controller lists them: ``queue_us`` (Triton's queue time per request,
        `twin.observe.Observer.queue_us_per_request`). Read-only: it changes no run."""
        if metric != "queue_us":
            raise BackendError(f"unknown pod metric '{metric}' (known: queue_us)")
        return self.obs.pod_samples(pool), self.obs.queue_us_per_request(pool, range_s)

    def pod_views(self, pool: str, window_s: float) -> list[PodView]:
        raise BackendError("the twin runs its HPA in-cluster (controller: hpa); "
                           "it lists no pods to an outside controller")  # fmt: skip


def _platform(backend: TwinBackend, sc: Scenario, seed: int) -> Any:
    """The scenario's shared platform on the backend's clock (imported only when used, so the
    single-service path is untouched); model load follows the pattern's level over its peak."""
    from twin.platform.world import PlatformWorld

    peak = max((backend.pattern.level(float(t)) for t in range(int(sc.duration_s) + 1)),
               default=0.0)  # fmt: skip
    return PlatformWorld(backend.env, sc, seed,
                         lambda t: backend.pattern.level(t) / peak if peak > 0 else 0.0)

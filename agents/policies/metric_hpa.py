"""The Kubernetes HPA on custom metrics: Triton's own recipe and a KEDA-style request rate.

Both run the HPA v2 algorithm of `kisim.core.hpa` (tolerance, stabilisation windows, scaling
policies: `HorizontalPodAutoscaler`), with the metric proposal replaced, as inner controllers
ticking every ``controller.hpa.sync_period_s`` (15 s) - one HPA per pool of
``controller.hpa.pools`` - mirrored from ``kubernetes/kubernetes``
``pkg/controller/podautoscaler/replica_calculator.go``:

* ``triton-hpa[:TARGET_US[:DOWN_STAB_S]]`` - NVIDIA's ``deploy/k8s-onprem`` Helm chart in
  ``triton-inference-server/server``: a ``Pods`` metric ``avg_time_queue_us`` with an
  ``AverageValue`` target of 50, served by prometheus-adapter per pod from
  ``avg(delta(nv_inference_queue_duration_us[30s])``
  ``/ (1 + delta(nv_inference_request_success[30s])))``.
  Proposal: ``GetMetricReplicas`` -> `plain_metric_replicas`
  (``calcPlainMetricReplicas``): average over the pods with a value, ratio to the target,
  ``ceil(ratio x ready pods)`` outside the tolerance, missing pods as the target on a
  scale-down and 0 on a scale-up, Pending pods as 0 on a scale-up. The per-pod values come
  from the twin's Prometheus view (`twin.observe.Observer.queue_us_per_request`, the same
  PromQL ``delta`` over scraped counters); a backend without that view falls back to the
  Window's mean queue time for every ready pod.
* ``keda[:UTIL[:DOWN_STAB_S]]`` - KEDA's ``prometheus`` scaler: a ScaledObject whose query is
  the request rate arriving at the pool (``sum(rate(requests[1m]))``, the ingress counter:
  requests the Service routes to the pool) and whose ``threshold`` (metricType
  ``AverageValue``) is requests per second per replica; KEDA hands it to the HPA as an
  ``External`` metric. Proposal: ``GetExternalPerPodMetricReplicas`` ->
  `external_per_pod_replicas`: ``ceil(rate / threshold)`` unless ``rate / (threshold x
  status.replicas)`` is within the tolerance. The threshold per pool is ``UTIL`` x the pool's
  nominal capacity (`agents.policies.params.nominal_rps`), so one number tunes every pool of
  a heterogeneous fleet; the thresholds in req/s are in the policy's log.

``DOWN_STAB_S`` sets ``behavior.scaleDown.stabilizationWindowSeconds`` (default: the
scenario's, 300 s as Kubernetes'). See docs/baselines.md.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from typing import Any

import numpy as np

from agents.policies.base import Policy
from agents.policies.kpa import pool_shares
from agents.policies.params import Field, help_of, nominal_rps, parse_params
from kisim.core.backend import Action, PoolSetting
from kisim.core.config import Scenario, override
from kisim.core.errors import BackendError
from kisim.core.hpa import HorizontalPodAutoscaler, PodSample, ReplicaComputeError, _within
from kisim.core.routing import RouteTable
from kisim.core.window import Window


def _milli(v: float) -> int:
    """``resource.Quantity.MilliValue()`` of a custom-metric value (rounded up)."""
    return -(-round(v * 1e6) // 1000)


def group_pods_metric(pods: list[PodSample], metrics: dict[str, float]
                      ) -> tuple[int, set[str], set[str], set[str]]:  # fmt: skip
    """``groupPods`` for a non-CPU metric: deleted/Failed -> ignored, Pending -> unready, no
    value -> missing, else ready (the CPU readiness rule does not apply)."""
    ready, unready, missing, ignored = 0, set(), set(), set()
    for p in pods:
        if p.deleting or p.phase == "Failed":
            ignored.add(p.name)
        elif p.phase == "Pending":
            unready.add(p.name)
        elif p.name not in metrics:
            missing.add(p.name)
        else:
            ready += 1
    return ready, unready, missing, ignored


def _usage_ratio(metrics: dict[str, int], target_milli: int) -> float:
    """``GetMetricUsageRatio``: integer mean of the milli-values over the target."""
    return (sum(metrics.values()) // len(metrics)) / target_milli


def plain_metric_replicas(current: int, target: float, tolerance: float, pods: list[PodSample],
                          values: dict[str, float]) -> int:  # fmt: skip
    """``calcPlainMetricReplicas`` for a Pods metric with an AverageValue `target`."""
    target_m = _milli(target)
    metrics = {k: _milli(v) for k, v in values.items()}
    ready, unready, missing, ignored = group_pods_metric(pods, values)
    for name in ignored | unready:
        metrics.pop(name, None)
    metrics = {k: v for k, v in metrics.items() if k in {p.name for p in pods}}
    if not metrics:
        raise ReplicaComputeError("did not receive metrics for targeted pods")
    ratio = _usage_ratio(metrics, target_m)
    up_with_unready = bool(unready) and ratio > 1.0
    if not up_with_unready and not missing:
        return current if _within(ratio, tolerance) else math.ceil(ratio * ready)
    for name in missing:
        metrics[name] = target_m if ratio < 1.0 else 0
    if up_with_unready:
        for name in unready:
            metrics[name] = 0
    new = _usage_ratio(metrics, target_m)
    if _within(new, tolerance) or (ratio < 1.0 < new) or (ratio > 1.0 > new):
        return current
    n = math.ceil(new * len(metrics))
    if (new < 1.0 and n > current) or (new > 1.0 and n < current):
        return current
    return n


def external_per_pod_replicas(status_replicas: int, target: float, tolerance: float,
                              usage: float) -> int:  # fmt: skip
    """``GetExternalPerPodMetricReplicas``: an External metric with an AverageValue target."""
    target_m, usage_m = _milli(target), _milli(usage)
    if status_replicas <= 0:
        raise ReplicaComputeError("no replicas")
    ratio = usage_m / (target_m * status_replicas)
    return status_replicas if _within(ratio, tolerance) else math.ceil(usage_m / target_m)


class _ProposalHPA(HorizontalPodAutoscaler):
    """The controller with the proposal set from outside before each sync."""

    proposal: Any = None

    def _propose(self, now: float, current_replicas: int, pods: list[PodSample]) -> int:
        return self.proposal(current_replicas)  # type: ignore[no-any-return]


class MetricHPA(Policy, ABC):
    """An HPA per pool on a custom metric, ticking at the HPA's sync period."""

    action = "none"
    period_s = 15.0
    fields: tuple[Field, ...] = ()

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        self.p = parse_params(self.name, arg, self.fields)
        given = (arg or "").split(":")
        self.down_given = len(given) > 1 and given[1] != ""

    def scenario(self, sc: Scenario) -> Scenario:
        d: dict[str, object] = {"controller.name": "external"}
        if self.down_given:  # else the scenario's window (Kubernetes' 300 s by default)
            d["controller.hpa.scale_down_stabilization_s"] = self.p["down_stab_s"]
        return override(sc, f"policy {self.name}", **d)

    def reset(self, scenario: Scenario) -> None:
        self.sc = scenario
        cfg = scenario.controller.hpa
        self.period_s = cfg.sync_period_s
        self.routes = RouteTable(scenario)
        self.hpas = {pool: _ProposalHPA(cfg, max(1, scenario.pools[pool].min_replicas),
                                        scenario.pools[pool].max_replicas)
                     for pool in scenario.hpa_pools()}  # fmt: skip
        self.log: list[tuple[float, str, float, int]] = []  # (t, pool, metric, desired)

    def attach(self, env: Any) -> None:
        super().attach(env)
        self.backend = env.backend

    def act(self, obs: np.ndarray, window: Window | None, t: float) -> Any:
        return 0

    @abstractmethod
    def proposal(self, pool: str, w: Window, t: float) -> tuple[Any, float]:
        """The pool's metric now and the HPA's proposal from it (each subclass: its metric type)."""

    def tick(self, w: Window, t: float) -> Action | None:
        self.observe(w, t)
        floors = self.floors(w, t)
        settings: dict[str, PoolSetting] = {}
        for pool, hpa in self.hpas.items():
            current = w.pool(pool).desired
            hpa.proposal, metric = self.proposal(pool, w, t)
            if floors.get(pool, 0) > 0:  # a second trigger: the HPA takes the larger proposal
                hpa.proposal = _at_least(hpa.proposal, floors[pool])
            desired = hpa.sync(t, current, [])
            self.log.append((t, pool, metric, desired))
            if desired != current:
                settings[pool] = PoolSetting(replicas=desired)
        return Action(pools=settings) if settings else None

    def observe(self, w: Window, t: float) -> None:
        """Record what the metric needs from this tick's Window."""

    def floors(self, w: Window, t: float) -> dict[str, int]:
        """Replicas per pool asked by a second trigger (`agents.policies.cron`); none."""
        return {}


def _at_least(proposal: Any, floor: int) -> Any:
    """The larger of two metrics' proposals; as ``computeReplicasForMetrics``, a metric that
    cannot be computed blocks no scale-up the other asks for."""

    def both(current: int) -> int:
        try:
            return max(proposal(current), floor)  # type: ignore[no-any-return]
        except ReplicaComputeError:
            if floor > current:
                return floor
            raise

    return both


DOWN = Field("down_stab_s", 300.0, 0.0, 3600.0, lo_incl=True)


class TritonHPA(MetricHPA):
    """``triton-hpa[:TARGET_US[:DOWN_STAB_S]]``: NVIDIA's recipe, queue time per request."""

    name = "triton-hpa"
    fields = (Field("target_us", 50.0, 0.0, 1e8), DOWN)
    arg_help = help_of(fields)
    range_s = 30.0

    def proposal(self, pool: str, w: Window, t: float) -> tuple[Any, float]:
        target, tol = self.p["target_us"], self.sc.controller.hpa.tolerance
        # the chart's [30s], widened to just over two scrape intervals: Prometheus drops a
        # range holding fewer than two samples, and with 15 s scrapes aligned to the sync a
        # 30 s range can hold one
        rng = max(self.range_s, 2 * self.sc.metrics.scrape_interval_s + 1.0)
        try:
            pods, values = self.backend.pod_metric(pool, "queue_us", rng)
        except BackendError:  # no per-pod view: every ready pod reports the Window's mean
            q = w.queue_wait_ms * 1e3 if w.queue_wait_ms == w.queue_wait_ms else 0.0
            n = w.pool(pool).ready
            pods = [PodSample(f"{pool}-{i}", "Running", False, True, 0.0, 0.0, 1.0, 0.0, t, 15.0)
                    for i in range(n)]  # fmt: skip
            values = {p.name: q for p in pods}
        live = [values[p.name] for p in pods if p.name in values and not p.deleting]
        metric = sum(live) / len(live) if live else math.nan
        return (lambda cur: plain_metric_replicas(cur, target, tol, pods, values)), metric


class KEDA(MetricHPA):
    """``keda[:UTIL[:DOWN_STAB_S]]``: requests per second per replica (threshold = UTIL x the
    pool's nominal capacity), KEDA's prometheus scaler through the HPA."""

    name = "keda"
    fields = (Field("util", 0.7, 0.0, 2.0), DOWN)
    arg_help = help_of(fields)
    range_s = 60.0

    def reset(self, scenario: Scenario) -> None:
        super().reset(scenario)
        self.threshold = {p: self.p["util"] * nominal_rps(scenario, p) for p in self.hpas}
        self.arrivals: dict[str, deque[tuple[float, float]]] = {p: deque() for p in self.hpas}

    def observe(self, w: Window, t: float) -> None:
        shares = pool_shares(self.routes, w)
        for pool, q in self.arrivals.items():
            q.append((w.t_end, w.offered * shares.get(pool, 0.0)))
            while q and q[0][0] <= t - self.range_s + 1e-9:
                q.popleft()

    def rate(self, pool: str) -> float:
        """``sum(rate(requests{pool}[1m]))``: arrivals routed to the pool over the range."""
        q = self.arrivals[pool]
        return sum(n for _, n in q) / self.range_s

    def proposal(self, pool: str, w: Window, t: float) -> tuple[Any, float]:
        rate, thr = self.rate(pool), self.threshold[pool]
        tol = self.sc.controller.hpa.tolerance
        status = w.pool(pool).desired  # scale.status.replicas: the pods that exist
        return (lambda cur: external_per_pod_replicas(status, thr, tol, rate)), rate

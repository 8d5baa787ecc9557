"""Kubernetes HorizontalPodAutoscaler (autoscaling/v2) on CPU ``averageUtilization``.

A pure, clock-injected copy of the decision the real controller makes, so that the
twin's HPA baseline scales exactly as a cluster's would. Mirrored from
``kubernetes/kubernetes`` ``pkg/controller/podautoscaler``:

* ``replica_calculator.go``: ``GetResourceReplicas``, ``groupPods``,
  ``calculateRequests``, ``removeMetricsForPods``, ``Tolerances.isWithin``;
* ``metrics/utilization.go``: ``GetResourceUtilizationRatio``;
* ``metrics/client.go``: ``getPodMetrics`` (usage summed as ``Quantity.MilliValue()``);
* ``horizontal.go``: ``reconcileAutoscaler``, ``recordInitialRecommendation``,
  ``normalizeDesiredReplicasWithBehaviors``, ``stabilizeRecommendationWithBehaviors``,
  ``convertDesiredReplicasWithBehaviorRate``, ``calculateScaleUpLimitWithScalingRules``,
  ``calculateScaleDownLimitWithBehaviors``, ``getReplicasChangePerPeriod``,
  ``storeScaleEvent``, ``markScaleEventsOutdated``, ``getLongestPolicyPeriod``.

Go's integer steps (millicores, whole-percent utilisation, ``int32()`` truncation)
and float64 steps are kept as they are: the band edges and rounding are the point of
a faithful baseline. ``time.Now()`` becomes the ``now`` argument.

Modelled HPA object: one ``Resource`` metric (cpu, ``averageUtilization``) and a
``spec.behavior`` filled from :class:`~kisim.core.config.HPAConfig` (whose defaults are
the API server's ``GenerateHPAScale{Up,Down}Rules`` defaults plus the controller's
300 s ``--horizontal-pod-autoscaler-downscale-stabilization``). The legacy
``behavior: nil`` path (``normalizeDesiredReplicas``: no per-period memory, limit
``max(2*current, 4)``) is not modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kisim.core.config import HPAConfig, ScalingPolicy

_INT32_MAX = 2**31 - 1
_INT32_MIN = -(2**31)


@dataclass(frozen=True, slots=True)
class PodSample:
    """One pod as the controller sees it at sync time (pod lister + metrics API)."""

    name: str
    phase: str  # "Pending" | "Running" | "Failed" (others behave like Running, as in Go)
    deleting: bool  # metadata.deletionTimestamp set
    ready: bool  # Ready condition status (True/False)
    start_time: float | None  # pod.status.startTime (s, twin clock); None if not started
    ready_transition_time: float | None  # Ready condition lastTransitionTime; None = no condition
    cpu_request: float  # cores, summed over containers; <= 0 means "no request set"
    cpu_usage: float | None  # cores from metrics-server; None = pod absent from the metrics API
    metric_timestamp: float  # PodMetrics.timestamp
    metric_window: float  # PodMetrics.window (s)


class ReplicaComputeError(Exception):
    """The controller could not compute a recommendation (it then leaves the scale alone)."""


def _milli(cores: float) -> int:
    """``resource.Quantity.MilliValue()``: ceil to millicores.

    metrics-server reports nanocores, so the float is first rounded to 1e-9 cores;
    otherwise float noise (``2.007 * 1000 == 2007.0000000000002``) would add a millicore.
    """
    nanos = round(cores * 1e9)
    return -(-nanos // 1_000_000)


def _within(ratio: float, tolerance: float) -> bool:
    """``Tolerances.isWithin``: the inclusive band ``1-down <= r <= 1+up`` (both = tolerance).

    Releases before the configurable-tolerance change (KEP-4951) tested
    ``math.Abs(1.0-usageRatio) <= tolerance``; that differs only at the exact float
    edge (ratio 66/60 = 1.1 scaled there, 0.10000000000000009 > 0.1; it does not here).
    """
    return (1.0 - tolerance) <= ratio <= (1.0 + tolerance)


def group_pods(
    pods: list[PodSample], now: float, cpu_initialization_period: float, readiness_delay: float
) -> tuple[int, set[str], set[str], set[str]]:
    """``groupPods`` for resource cpu: (readyPodCount, unready, missing, ignored).

    Order matters and follows Go: deleted/Failed -> ignored; Pending -> unready;
    no metric -> missing; then the CPU-only readiness rule. Inside the
    initialisation period (``startTime + cpuInitializationPeriod > now``) a sample is
    dropped if the pod is not Ready or the sample's window began before the last
    Ready transition; after it, only pods that are not Ready and have never been
    Ready (transition within ``delayOfInitialReadinessStatus`` of start) are dropped.
    """
    ready_count = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for p in pods:
        if p.deleting or p.phase == "Failed":
            ignored.add(p.name)
            continue
        if p.phase == "Pending":
            unready.add(p.name)
            continue
        if p.cpu_usage is None:
            missing.add(p.name)
            continue
        if p.ready_transition_time is None or p.start_time is None:
            is_unready = True
        elif p.start_time + cpu_initialization_period > now:
            is_unready = (not p.ready) or (
                p.metric_timestamp < p.ready_transition_time + p.metric_window
            )
        else:
            is_unready = (not p.ready) and (
                p.start_time + readiness_delay > p.ready_transition_time
            )
        if is_unready:
            unready.add(p.name)
            continue
        ready_count += 1
    return ready_count, unready, missing, ignored


def get_resource_utilization_ratio(
    metrics: dict[str, int], requests: dict[str, int], target_pct: int
) -> tuple[float, int]:
    """``GetResourceUtilizationRatio``: (usage ratio, whole-percent utilisation).

    Utilisation is ``int64(sum usage * 100 / sum requests)`` (truncated), so the
    ratio moves in steps of 1 % / target, exactly as on a cluster.
    """
    usage_total = 0
    request_total = 0
    for name, value in metrics.items():
        if name not in requests:
            continue
        usage_total += value
        request_total += requests[name]
    if request_total == 0:
        raise ReplicaComputeError("no metrics returned matched known pods")
    utilization = (usage_total * 100) // request_total
    return utilization / target_pct, utilization


def get_resource_replicas(
    current_replicas: int,
    target_pct: int,
    tolerance: float,
    pods: list[PodSample],
    now: float,
    cpu_initialization_period: float = 300.0,
    readiness_delay: float = 30.0,
) -> int:
    """``GetResourceReplicas``: the per-metric proposal; raises ReplicaComputeError.

    Missing pods count as 100 % of their request (``max(100, target)`` %) on a
    scale-down and 0 on a scale-up; unready pods count as 0 only on a scale-up. If
    those assumptions bring the ratio into the band or flip its direction, or the
    changed pod count would flip the direction, the current count is kept.
    """
    metrics = {p.name: _milli(p.cpu_usage) for p in pods if p.cpu_usage is not None}
    if not metrics:
        raise ReplicaComputeError("no metrics returned from resource metrics API")
    if not pods:
        raise ReplicaComputeError("no pods returned by selector")
    ready_count, unready, missing, ignored = group_pods(
        pods, now, cpu_initialization_period, readiness_delay
    )
    for name in ignored | unready:  # removeMetricsForPods, twice
        metrics.pop(name, None)
    if not metrics:
        raise ReplicaComputeError("did not receive metrics for targeted pods")
    requests: dict[str, int] = {}
    for p in pods:  # calculateRequests covers every listed pod, ignored ones too
        if p.cpu_request <= 0:
            raise ReplicaComputeError(f"missing request for cpu in pod {p.name}")
        requests[p.name] = _milli(p.cpu_request)

    ratio, _ = get_resource_utilization_ratio(metrics, requests, target_pct)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if _within(ratio, tolerance):
            return current_replicas
        return math.ceil(ratio * ready_count)

    if missing:
        if ratio < 1.0:
            fallback = max(100, target_pct)
            for name in missing:
                metrics[name] = requests[name] * fallback // 100
        elif ratio > 1.0:
            for name in missing:
                metrics[name] = 0
    if scale_up_with_unready:
        for name in unready:
            metrics[name] = 0

    new_ratio, _ = get_resource_utilization_ratio(metrics, requests, target_pct)
    flipped = (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio)
    if _within(new_ratio, tolerance) or flipped:
        return current_replicas
    new_replicas = math.ceil(new_ratio * len(metrics))
    down_but_up = new_ratio < 1.0 and new_replicas > current_replicas
    if down_but_up or (new_ratio > 1.0 and new_replicas < current_replicas):
        return current_replicas  # the pod count, not the ratio, would flip direction
    return new_replicas


@dataclass(slots=True)
class _ScaleEvent:  # timestampedScaleEvent; change >= 0 in both lists
    change: int
    timestamp: float
    outdated: bool = False


def _change_per_period(period_s: float, events: list[_ScaleEvent], now: float) -> int:
    """``getReplicasChangePerPeriod``: sum of changes strictly after ``now - period``."""
    cutoff = now - period_s
    return sum(e.change for e in events if e.timestamp > cutoff)


def _target_pct(target: float) -> int:
    """averageUtilization is an int32 percent; kisim configures it as a fraction."""
    pct = round(target * 100)
    if pct < 1:
        raise ValueError(f"target utilisation {target} is below 1 %")
    return pct


class HorizontalPodAutoscaler:
    """One HPA object plus the controller state kept for it (recommendations, events).

    ``min_replicas < 1`` is taken as an omitted ``spec.minReplicas``, which defaults
    to 1 (0 needs the alpha ``HPAScaleToZero`` gate, not modelled).
    """

    def __init__(self, cfg: HPAConfig, min_replicas: int, max_replicas: int) -> None:
        self.cfg = cfg
        self.min_replicas = max(1, min_replicas)
        if max_replicas < self.min_replicas:
            raise ValueError(f"maxReplicas {max_replicas} < minReplicas {self.min_replicas}")
        self.max_replicas = max_replicas
        self._target = _target_pct(cfg.target_cpu_utilization)
        self._recommendations: list[tuple[float, int]] = []  # (timestamp, recommendation)
        self._up_events: list[_ScaleEvent] = []
        self._down_events: list[_ScaleEvent] = []
        self._last_recommendation: int | None = None

    @property
    def last_recommendation(self) -> int | None:
        """Pre-behaviour desired count of the last sync (the metric proposal, or the
        min/max bound when current is out of range); None if disabled or on error."""
        return self._last_recommendation

    @property
    def target_pct(self) -> int:
        return self._target

    def set_target(self, target: float) -> None:
        """Change averageUtilization (fraction, e.g. 0.6); the controller keeps its history."""
        self._target = _target_pct(target)

    def sync(self, now: float, current_replicas: int, pods: list[PodSample]) -> int:
        """``reconcileAutoscaler``: the replica count the HPA writes to the scale target.

        ``current_replicas`` must be the Deployment's ``spec.replicas`` (the controller
        reads ``scale.Spec.Replicas``, not the ready or existing pod count). Returns it
        unchanged when autoscaling is disabled (current 0) or no proposal can be made.
        """
        if len({p.name for p in pods}) != len(pods):
            raise ValueError("pod names must be unique")
        if not self._recommendations:  # recordInitialRecommendation
            self._recommendations.append((now, current_replicas))
        self._last_recommendation = None
        if current_replicas == 0:  # and minReplicas != 0, always here
            return 0  # ScalingDisabled: "the replica count of the target is zero"
        if current_replicas > self.max_replicas:
            desired = self.max_replicas
            self._last_recommendation = desired
        elif current_replicas < self.min_replicas:
            desired = self.min_replicas
            self._last_recommendation = desired
        else:
            try:
                proposal = self._propose(now, current_replicas, pods)
            except ReplicaComputeError:
                return current_replicas  # FailedComputeMetricsReplicas: no rescale
            desired = max(0, proposal)
            self._last_recommendation = desired
            stabilized = self._stabilize(now, current_replicas, desired)
            desired = self._rate_limit(now, current_replicas, stabilized)
        if desired != current_replicas:
            self._store_scale_event(now, current_replicas, desired)
        return desired

    def _propose(self, now: float, current_replicas: int, pods: list[PodSample]) -> int:
        """The metric's proposal (``computeReplicasForMetrics`` for the one metric);
        `MetricHPA` replaces it for a Pods or External metric."""
        return get_resource_replicas(
            current_replicas,
            self._target,
            self.cfg.tolerance,
            pods,
            now,
            self.cfg.cpu_initialization_period_s,
            self.cfg.initial_readiness_delay_s,
        )

    def _stabilize(self, now: float, current: int, desired: int) -> int:
        """``stabilizeRecommendationWithBehaviors``: clamp current into [min of
        recommendations in the up window, max of those in the down window]; record the
        raw recommendation, reusing the last slot older than both windows."""
        up_cutoff = now - self.cfg.scale_up_stabilization_s
        down_cutoff = now - self.cfg.scale_down_stabilization_s
        up_rec = down_rec = desired
        old_index: int | None = None
        for i, (ts, rec) in enumerate(self._recommendations):
            if ts > up_cutoff:
                up_rec = min(rec, up_rec)
            if ts > down_cutoff:
                down_rec = max(rec, down_rec)
            if ts < up_cutoff and ts < down_cutoff:
                old_index = i
        recommendation = current
        if recommendation < up_rec:
            recommendation = up_rec
        if recommendation > down_rec:
            recommendation = down_rec
        if old_index is not None:
            self._recommendations[old_index] = (now, desired)
        else:
            self._recommendations.append((now, desired))
        return recommendation

    def _rate_limit(self, now: float, current: int, desired: int) -> int:
        """``convertDesiredReplicasWithBehaviorRate``: policy limits, then max (up) or
        min (down) replicas; only the bound in the direction of travel applies."""
        if desired > current:
            limit = self._policy_limit(now, current, up=True)
            limit = max(limit, current)
            allowed = min(self.max_replicas, limit)
            if desired > allowed:
                return allowed
        elif desired < current:
            limit = self._policy_limit(now, current, up=False)
            limit = min(limit, current)
            allowed = max(self.min_replicas, limit)
            if desired < allowed:
                return allowed
        return desired

    def _policy_limit(self, now: float, current: int, *, up: bool) -> int:
        """``calculateScaleUpLimitWithScalingRules`` / ``calculateScaleDownLimitWithBehaviors``.

        Each policy's budget counts from the replica count at the start of its period
        (current minus additions plus removals within the period). Percent up rounds
        up (``math.Ceil``); Percent down truncates (``int32()``).
        """
        select = self.cfg.scale_up_select if up else self.cfg.scale_down_select
        policies: list[ScalingPolicy] = (
            self.cfg.scale_up_policies if up else self.cfg.scale_down_policies
        )
        if select == "Disabled":
            return current
        # "Min" = smallest change: lowest limit going up, highest going down.
        pick_low = (select == "Min") == up
        result = _INT32_MAX if pick_low else _INT32_MIN
        for pol in policies:
            added = _change_per_period(pol.period_s, self._up_events, now)
            deleted = _change_per_period(pol.period_s, self._down_events, now)
            start = current - added + deleted
            if up:
                if pol.type == "Pods":
                    proposed = start + pol.value
                else:
                    proposed = math.ceil(start * (1 + pol.value / 100))
            elif pol.type == "Pods":
                proposed = start - pol.value
            else:
                proposed = int(start * (1 - pol.value / 100))
            result = min(result, proposed) if pick_low else max(result, proposed)
        return result

    def _store_scale_event(self, now: float, prev: int, new: int) -> None:
        """``storeScaleEvent``: mark events older than the longest policy period as
        outdated, then overwrite the last outdated one or append."""
        up = new > prev
        events = self._up_events if up else self._down_events
        policies = self.cfg.scale_up_policies if up else self.cfg.scale_down_policies
        longest = max((p.period_s for p in policies), default=0)
        cutoff = now - longest
        old_index: int | None = None
        for i, event in enumerate(events):
            if event.timestamp < cutoff:
                event.outdated = True
            if event.outdated:
                old_index = i
        new_event = _ScaleEvent(abs(new - prev), now)
        if old_index is not None:
            events[old_index] = new_event
        else:
            events.append(new_event)

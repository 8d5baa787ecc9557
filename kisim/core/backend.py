"""The `Backend` protocol: the only thing `KisimEnv` knows about what it drives.

Two implementations: ``twin.TwinBackend`` (SimPy digital twin) and
``bridge.ClusterBackend`` (a real cluster or a local real stack). Actions are
absolute targets, already clamped by the caller's view of bounds; the backend
clamps again and reports what it did in `Applied`.

The protocol declares everything the env, the episode runner, the policies and the
evaluation harness use — the step loop (reset · apply · advance · now · close), the
episode's per-request records (latencies, queue waits, batches) from which summaries are
computed, and what an HPA run from outside the backend needs (`in_cluster_hpa`,
`pod_views`) — so a third backend written to it alone runs everywhere the two do
(tests/kisim/test_backend_contract.py drives one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from kisim.core.config import Scenario
from kisim.core.hpa import PodSample
from kisim.core.sketch import LatencySketch
from kisim.core.window import Window


@dataclass(frozen=True, slots=True)
class PoolSetting:
    """Targets for one pool; None leaves a setting unchanged."""

    replicas: int | None = None
    cpu: float | None = None  # cores (request = limit)
    memory_gib: float | None = None
    max_batch_size: int | None = None
    instances: int | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """What a policy asks of the cluster. Pool keys: 'gpu', 'cpu'."""

    pools: dict[str, PoolSetting] = field(default_factory=dict)
    placement: str | None = None  # prefer-gpu | balanced | prefer-cpu
    hpa_target: float | None = None  # HPA target CPU utilisation (0..1]


@dataclass(frozen=True, slots=True)
class Applied:
    """What the backend actually set, and what it had to clamp."""

    replicas: dict[str, int]
    clamped: dict[str, str]  # setting -> why, e.g. {"gpu.replicas": "5 > max_replicas 4"}


@dataclass(frozen=True, slots=True)
class PodView:
    """A pod as an HPA sync sees it (times in episode seconds): the pod lister's lifecycle
    and the metrics API's CPU sample (`cpu_usage` cores, None where no rate exists yet)."""

    name: str
    created_s: float
    ready_s: float | None
    deleting: bool
    cpu_request: float
    cpu_usage: float | None
    metric_s: float
    metric_window_s: float


@runtime_checkable
class Backend(Protocol):
    """reset(scenario, seed) · apply(action) · advance(dt) -> Window, plus the episode's
    records and the views an outside controller needs."""

    def reset(self, scenario: Scenario, seed: int) -> None:
        """Start a fresh episode of `scenario`; the same seed gives the same run (twin)."""

    def apply(self, action: Action) -> Applied:
        """Set targets now; effects (pods starting, routing) follow the backend's own time."""

    def advance(self, dt: float) -> Window:
        """Let `dt` seconds pass and report them."""

    @property
    def now(self) -> float:
        """Seconds since the episode started."""

    def close(self) -> None:
        """Release everything the backend created."""

    # ---------------------------------------------------------------- the episode's records

    def latencies(self) -> np.ndarray | LatencySketch:
        """Latencies (s) of every request answered since `reset`, in completion order — or,
        where the backend streams them, their `LatencySketch` (the twin with
        ``metrics.latency_stats: sketch``, or `auto` on a large run; memory flat in
        requests)."""

    def waits(self) -> np.ndarray | LatencySketch:
        """Queue waits (s) since `reset`: per request, or fewer elements where the backend
        only sees aggregates (the cluster: one element, the episode's mean), or a sketch."""

    @property
    def batches(self) -> int:
        """Batches executed since `reset` (with `batch_items`: the mean batch size)."""

    @property
    def batch_items(self) -> int:
        """Requests executed in those batches."""

    # ---------------------------------------------------------------- outside controllers

    @property
    def in_cluster_hpa(self) -> bool:
        """Whether the scenario's `hpa` controller runs inside the backend (the twin, a real
        cluster's HPA object); False: the policy runs kisim's HPA from outside on `pod_views`."""

    def pod_metric(self, pool: str, metric: str,
                   range_s: float) -> tuple[list[PodSample], dict[str, float]]:  # fmt: skip
        """A custom per-pod metric (``queue_us``: Triton's queue time per request) as the HPA's
        custom-metrics API serves it, with the pool's pods; BackendError where the backend
        has no per-pod view (callers then use the Window's pool-wide figure)."""

    def pod_views(self, pool: str, window_s: float) -> list[PodView]:
        """Each live pod of `pool` now, as an HPA sync sees it, CPU averaged over the last
        `window_s`. Only asked when `in_cluster_hpa` is False; may raise BackendError."""

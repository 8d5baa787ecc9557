"""The `Actuator` protocol: how the bridge changes a real serving system.

Two implementations share it: ``bridge.local`` (real Triton processes on this
machine, one per replica, behind a Service-like router per pool) and
``bridge.kube`` (Deployments of a real cluster through the Kubernetes API).
The load generator splits traffic between the pools' URLs by placement, so
placement is the load's concern and the actuator only serves pool URLs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bridge.lifecycle import ReplicaEvent
from kisim.core.config import SEED_POOLS, Scenario
from kisim.core.errors import BackendError


@dataclass(frozen=True, slots=True)
class PoolState:
    """Replica counts of one pool as the API (or the local supervisor) reports them."""

    desired: int
    ready: int
    pending: int


@dataclass(frozen=True, slots=True)
class PodLifecycle:
    """One live replica as a pod lister shows it (unix seconds)."""

    name: str
    created: float
    ready_at: float | None  # None: not ready yet
    deleting: bool  # taken out of the endpoints, draining


@runtime_checkable
class Actuator(Protocol):
    def start(self, scenario: Scenario) -> None:
        """Remember the original state, bring pools to the scenario's initial replicas."""

    def set_replicas(self, pool: str, n: int) -> int:
        """Ask for `n` replicas (clamped to the pool's min/max); returns what was set."""

    def state(self, pool: str) -> PoolState:
        """Desired / ready / pending replicas now."""

    def pool_url(self, pool: str) -> str | None:
        """Base URL the load generator sends this pool's requests to (None: no pool)."""

    def set_hpa(self, pool: str, target_cpu_utilization: float | None) -> None:
        """Create/update a real HPA (kubernetes) or refuse (local); None deletes it."""

    def close(self) -> None:
        """Restore original replica counts and remove everything created."""


@runtime_checkable
class EndpointLister(Protocol):
    """An actuator that exposes each pool's ready endpoints (local), not only a Service URL."""

    def endpoints(self, pool: str) -> list[str]: ...


@runtime_checkable
class EventSource(Protocol):
    """An actuator that records replica lifecycle events (for replica-seconds and traces)."""

    def events(self) -> list[ReplicaEvent]: ...


@runtime_checkable
class PodLister(Protocol):
    """An actuator that lists each pool's live pods with their lifecycle (local)."""

    def pods(self, pool: str) -> list[PodLifecycle]: ...


def set_controller(actuator: Actuator, sc: Scenario) -> None:
    """controller 'hpa' means a real HPA in the cluster; otherwise make sure there is none."""
    on = sc.hpa_pools() if sc.controller.name == "hpa" else []
    for pool in sc.pools:
        actuator.set_hpa(pool, sc.controller.hpa.target_cpu_utilization if pool in on else None)


def check_seed_layout(sc: Scenario) -> None:
    """The real backends drive the seed layout's two Deployments (a ``gpu`` and a ``cpu``
    pool) and split traffic with `routing.gpu_share`; anything else is refused up front."""
    if not sc.seed_layout:
        raise BackendError(f"the real backends run the pools {' and '.join(SEED_POOLS)}; "
                           f"this scenario has {', '.join(sc.pools)} (the twin runs any "
                           "pools)")  # fmt: skip
    if sc.routing.weights is not None:
        raise BackendError("the real backends split traffic by routing.gpu_share; "
                           "routing.weights is for the twin")  # fmt: skip

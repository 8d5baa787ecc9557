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

from kisim.core.config import Scenario


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

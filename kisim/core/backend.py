"""The `Backend` protocol: the only thing `KisimEnv` knows about what it drives.

Two implementations: ``twin.TwinBackend`` (SimPy digital twin) and
``bridge.ClusterBackend`` (a real cluster or a local real stack). Actions are
absolute targets, already clamped by the caller's view of bounds; the backend
clamps again and reports what it did in `Applied`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from kisim.core.config import Scenario
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


@runtime_checkable
class Backend(Protocol):
    """reset(scenario, seed) · apply(action) · advance(dt) -> Window."""

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

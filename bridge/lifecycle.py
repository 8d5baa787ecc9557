"""Replica lifecycle events and the cost integral (replica-seconds) built from them.

The local supervisor records when each replica process was created, became ready, was
taken out of the endpoints (stopping) and terminated; a Kubernetes actuator can record
the same from pod watches. A replica that crashes after it was ready is recorded as
``failed`` (detail ``crashed: ...``) and ``terminated``, and replaced like a restarted
container. `replica_seconds` is what the Window's ``*_replica_s`` mean:
seconds a replica held its resources (created .. terminated), whether ready or not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

EventKind = Literal["created", "ready", "stopping", "terminated", "failed", "fault", "restored"]
"""``fault``/``restored``: an injected fault began / was undone (`bridge.faults`); the
replica column then names the fault's target (a replica, ``prometheus`` or ``run-dir``)."""


@dataclass(frozen=True, slots=True)
class ReplicaEvent:
    t_unix: float
    pool: str
    replica: str
    kind: EventKind
    detail: str = ""


def replica_seconds(events: Iterable[ReplicaEvent], pool: str, a: float, b: float) -> float:
    """Sum over `pool`'s replicas of |[created, terminated) ∩ [a, b)| (unix seconds)."""
    born: dict[str, float] = {}
    died: dict[str, float] = {}
    for e in events:
        if e.pool != pool:
            continue
        if e.kind == "created":
            born[e.replica] = e.t_unix
        elif e.kind == "terminated":
            died[e.replica] = e.t_unix
    total = 0.0
    for r, t0 in born.items():
        t1 = died.get(r, b)
        total += max(0.0, min(t1, b) - max(t0, a))
    return total

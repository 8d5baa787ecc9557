"""Cluster Autoscaler decisions: scale up node groups for unschedulable pods, scale down
nodes that stayed under the utilisation threshold.

From ``kubernetes/autoscaler`` ``cluster-autoscaler/FAQ.md`` ("How does scale-up work?",
"How does scale-down work?", "What are the parameters to CA?", "What are Expanders?"):

* every ``--scan-interval`` (10 s) CA looks for pods the scheduler marked unschedulable; it
  simulates them on a *template node* of each node group that is below its max size, and the
  expander picks one group among those that help; new nodes count as upcoming capacity
  while they provision, so CA does not add them twice;
* expanders: ``random`` (the default), ``most-pods`` (helps the most pods), ``least-waste``
  (least idle CPU and memory left on the new nodes), ``priority`` (the highest user priority;
  ties at random);
* a node is *unneeded* when the sum of its pods' requests is under
  ``--scale-down-utilization-threshold`` (0.5) of its allocatable — for a node with GPUs only
  the GPU counts (``simulator/utilization``: "GPU utilization ... if the node has GPUs") —
  and all its pods can move to other nodes; after ``--scale-down-unneeded-time`` (10 min)
  unneeded it is drained and deleted, but never within ``--scale-down-delay-after-add``
  (10 min) of a scale-up, and never below the group's min size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Request:
    """An unschedulable pod's requests and the node groups its selector allows."""

    cpu: float
    memory_gib: float
    gpu: int
    groups: frozenset[str]


@dataclass(frozen=True)
class Group:
    """A node group as scale-up sees it: its template node and how many more it may add."""

    name: str
    cpu: float
    memory_gib: float
    gpu_slots: int
    room: int  # max size - (current + upcoming)
    priority: int = 0


@dataclass(frozen=True)
class Option:
    """Adding `nodes` nodes to `group` would schedule `pods` of the pending pods."""

    group: str
    nodes: int
    pods: int
    waste: float  # mean idle share of cpu and memory on the new nodes


def estimate(group: Group, pending: Sequence[Request]) -> Option | None:
    """First-fit-decreasing of the pods this group can take onto fresh template nodes (CA's
    binpacking estimator), limited by the group's room."""
    fit = [r for r in pending if group.name in r.groups and r.cpu <= group.cpu
           and r.memory_gib <= group.memory_gib and r.gpu <= group.gpu_slots]  # fmt: skip
    if not fit or group.room <= 0:
        return None
    nodes: list[list[float]] = []  # free cpu, mem, gpu
    placed = 0
    for r in sorted(fit, key=lambda r: (-r.gpu, -r.cpu, -r.memory_gib)):
        for n in nodes:
            if n[0] >= r.cpu - 1e-9 and n[1] >= r.memory_gib - 1e-9 and n[2] >= r.gpu:
                n[0] -= r.cpu
                n[1] -= r.memory_gib
                n[2] -= r.gpu
                placed += 1
                break
        else:
            if len(nodes) < group.room:
                nodes.append([group.cpu - r.cpu, group.memory_gib - r.memory_gib,
                              group.gpu_slots - r.gpu])  # fmt: skip
                placed += 1
    waste = float(np.mean([(n[0] / group.cpu + n[1] / group.memory_gib) / 2 for n in nodes]))
    return Option(group.name, len(nodes), placed, waste)


def expand(options: Sequence[Option], expander: str, groups: dict[str, Group],
           rng: np.random.Generator) -> Option | None:  # fmt: skip
    """The option `--expander` picks (see the module doc)."""
    if not options:
        return None
    if expander == "most-pods":
        best = max(o.pods for o in options)
        pool = [o for o in options if o.pods == best]
    elif expander == "least-waste":
        best_w = min(o.waste for o in options)
        pool = [o for o in options if o.waste <= best_w + 1e-12]
    elif expander == "priority":
        best_p = max(groups[o.group].priority for o in options)
        pool = [o for o in options if groups[o.group].priority == best_p]
    else:
        pool = list(options)
    return pool[int(rng.integers(len(pool)))] if len(pool) > 1 else pool[0]


def utilisation(cpu_req: float, cpu: float, mem_req: float, mem: float,
                gpu_req: int, gpu_slots: int) -> float:  # fmt: skip
    """Node utilisation as CA computes it: GPU share on GPU nodes, else max(cpu, memory)."""
    if gpu_slots > 0:
        return gpu_req / gpu_slots
    return max(cpu_req / cpu, mem_req / mem)


@dataclass
class ScaleDown:
    """Tracks when each node became unneeded; says which may go now."""

    threshold: float = 0.5
    unneeded_time_s: float = 600.0
    delay_after_add_s: float = 600.0

    def __post_init__(self) -> None:
        self.since: dict[str, float] = {}
        self.last_scale_up = -float("inf")

    def observe(self, now: float, node: str, util: float, movable: bool) -> bool:
        """Record the node's state at a scan; True when CA would delete it now."""
        if util >= self.threshold or not movable:
            self.since.pop(node, None)
            return False
        t0 = self.since.setdefault(node, now)
        return (now - t0 >= self.unneeded_time_s
                and now - self.last_scale_up >= self.delay_after_add_s)  # fmt: skip

    def forget(self, node: str) -> None:
        self.since.pop(node, None)

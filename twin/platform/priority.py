"""PriorityClass preemption as kube-scheduler's DefaultPreemption plugin chooses victims.

Mirrored from ``kubernetes/kubernetes`` ``pkg/scheduler/framework/plugins/defaultpreemption/
default_preemption.go`` (``SelectVictimsOnNode``) and ``pkg/scheduler/framework/preemption/
preemption.go`` (``pickOneNodeForPreemption``), as the Kubernetes docs "Pod Priority and
Preemption" describe them:

* on each node, remove *every* pod of lower priority than the preemptor; if it still does not
  fit, the node is no candidate; otherwise *reprieve* victims, highest priority first (pods
  whose eviction would violate a PodDisruptionBudget are reprieved first), keeping each one
  the preemptor still fits beside;
* among candidate nodes pick, in order: fewest PDB violations, the lowest highest-victim
  priority, the smallest sum of victim priorities, the fewest victims, the latest start of the
  highest-priority victims, then the first node;
* a preemptor whose PriorityClass says ``preemptionPolicy: Never`` preempts nobody;
* victims are deleted gracefully (``terminationGracePeriodSeconds``) and the preemptor is
  *nominated* to the node until they are gone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class Victim(Protocol):
    """What preemption needs to know of a running pod."""

    @property
    def priority(self) -> int: ...
    @property
    def started(self) -> float: ...
    @property
    def pdb(self) -> str | None: ...


@dataclass(frozen=True)
class Candidate:
    """A node on which the preemptor fits after evicting `victims`."""

    node: int
    victims: tuple[Victim, ...]
    pdb_violations: int

    def key(self) -> tuple[int, int, int, int, float, int]:
        """pickOneNodeForPreemption's order: smaller is better."""
        prios = [v.priority for v in self.victims]
        top = max(prios, default=-(2**31))
        latest = max((v.started for v in self.victims if v.priority == top), default=0.0)
        return (self.pdb_violations, top, sum(prios), len(self.victims), -latest, self.node)


def select_victims_on_node(
    node: int,
    pods: Sequence[Victim],
    priority: int,
    fits_without: Callable[[Sequence[Victim]], bool],
    pdb_allowed: Mapping[str, int],
) -> Candidate | None:
    """Victims on one node, or None. `fits_without(evicted)` says whether the preemptor fits
    once `evicted` are gone; `pdb_allowed[name]` is the disruptions a PDB still allows."""
    lower = [p for p in pods if p.priority < priority]
    if not lower or not fits_without(lower):
        return None
    budget = dict(pdb_allowed)
    violating: list[Victim] = []
    ok: list[Victim] = []
    for p in sorted(lower, key=lambda p: (-p.priority, p.started)):  # MoreImportantPod first
        if p.pdb is not None and budget.get(p.pdb, 1 << 30) <= 0:
            violating.append(p)
        else:
            if p.pdb is not None:
                budget[p.pdb] = budget.get(p.pdb, 0) - 1
            ok.append(p)
    victims = list(lower)
    n_violations = 0
    for group, violates in ((violating, True), (ok, False)):  # reprieve violating ones first
        for p in group:
            rest = [v for v in victims if v is not p]
            if fits_without(rest):
                victims = rest
            elif violates:
                n_violations += 1
    return Candidate(node, tuple(victims), n_violations)


def pick_one_node(candidates: Sequence[Candidate]) -> Candidate | None:
    """The candidate kube-scheduler would preempt on (see the module doc), or None."""
    return min(candidates, key=Candidate.key, default=None)


def may_preempt(policy: str) -> bool:
    """PriorityClass.preemptionPolicy: ``Never`` pods wait instead of preempting."""
    return policy != "Never"

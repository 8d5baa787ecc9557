"""Preemption victim choice pinned to kube-scheduler's DefaultPreemption."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from twin.platform.priority import pick_one_node, select_victims_on_node


@dataclass(frozen=True)
class P:
    priority: int
    cpu: float
    started: float = 0.0
    pdb: str | None = None


def fits(capacity: float, pods: Sequence[P], need: float):
    def f(evicted: Sequence[P]) -> bool:
        return sum(p.cpu for p in pods) - sum(p.cpu for p in evicted) + need <= capacity
    return f


def test_lowest_priority_victims_reprieving_the_rest() -> None:
    """SelectVictimsOnNode removes every lower-priority pod, then reprieves the most important
    ones that still leave room: only the lowest priority goes (kubernetes/kubernetes,
    pkg/scheduler/framework/plugins/defaultpreemption/default_preemption.go)."""
    pods = [P(10, 2), P(100, 2), P(1000, 2)]
    c = select_victims_on_node(0, pods, 500, fits(6, pods, 2), {})
    assert c is not None and [v.priority for v in c.victims] == [10]
    # higher-priority pods are never victims, and a node where evicting all lower ones is not
    # enough is no candidate
    assert select_victims_on_node(0, pods, 500, fits(6, pods, 5), {}) is None


def test_pick_node_fewest_pdb_then_lowest_priority_then_fewest_victims() -> None:
    """pickOneNodeForPreemption: fewest PDB violations, then the lowest highest-victim
    priority, then the smallest priority sum, then the fewest victims
    (pkg/scheduler/framework/preemption/preemption.go; docs "Pod Priority and Preemption")."""
    a = [P(50, 4, pdb="web")]  # evicting it violates the PDB (no disruptions allowed)
    b = [P(80, 4)]
    c = [P(10, 2), P(10, 2)]  # two victims, both of lower priority than b's
    need = 4.0
    cands = [select_victims_on_node(i, pods, 1000, fits(4, pods, need), {"web": 0})
             for i, pods in enumerate((a, b, c))]
    assert all(x is not None for x in cands)
    assert cands[0] is not None and cands[0].pdb_violations == 1
    best = pick_one_node([x for x in cands if x is not None])
    assert best is not None and best.node == 2  # no PDB, lowest top priority (10 < 80)
    # with c gone, b (no violation) beats a (a PDB violation) although a's victim ranks lower
    best2 = pick_one_node([x for x in cands[:2] if x is not None])
    assert best2 is not None and best2.node == 1
    # same top priority and priority sum (10 + 0 = 10): fewer victims wins
    e = [P(10, 2), P(0, 2)]
    d = [P(10, 4)]
    ce = select_victims_on_node(3, e, 1000, fits(4, e, need), {})
    cd = select_victims_on_node(4, d, 1000, fits(4, d, need), {})
    assert ce is not None and cd is not None
    best3 = pick_one_node([ce, cd])
    assert best3 is not None and best3.node == 4


def test_pdb_protected_pods_are_reprieved_first() -> None:
    """Pods whose eviction would violate a PodDisruptionBudget are reprieved before the
    others (filterPodsWithPDBViolation, then reprieve violating victims first)."""
    pods = [P(10, 2, pdb="db"), P(10, 2)]
    c = select_victims_on_node(0, pods, 100, fits(4, pods, 2), {"db": 0})
    assert c is not None and c.pdb_violations == 0
    assert [v.pdb for v in c.victims] == [None]

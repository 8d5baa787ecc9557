"""The platform's nodes and pods, and a kube-scheduler pass with priority preemption.

Scheduling follows kube-scheduler's defaults where they matter here: the active queue is
sorted by priority, then creation time (the ``PrioritySort`` plugin); a pod fits a node when
its cpu, memory and ``nvidia.com/gpu`` slots are free (``NodeResourcesFit``) and the node is
in its node pool (a ``nodeSelector``) and not cordoned; among fitting nodes the least
allocated wins (``NodeResourcesFit`` scoring strategy ``LeastAllocated``), ties by node
order. A pod that fits nowhere may preempt (`twin.platform.priority`); it is then nominated
and waits for its victims' graceful termination.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from twin.platform.gpu_share import Slot
from twin.platform.priority import Candidate, may_preempt, pick_one_node, select_victims_on_node


@dataclass(eq=False)
class Node:
    """One node of a node pool."""

    name: str
    pool: str
    cpu: float
    memory_gib: float
    slots: list[Slot]
    spot: bool
    created: float
    state: str = "provisioning"  # provisioning | ready | cordoned | gone
    cpu_used: float = 0.0
    mem_used: float = 0.0
    slot_pod: list[Pod | None] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    gpu_busy: dict[int, int] = field(default_factory=dict)  # physical GPU -> busy pods
    removed: float | None = None
    notice: float | None = None  # spot interruption notice received

    def __post_init__(self) -> None:
        self.slot_pod = [None] * len(self.slots)

    def free_slots(self, evicted: frozenset[int] = frozenset()) -> list[int]:
        return [i for i, p in enumerate(self.slot_pod) if p is None or id(p) in evicted]

    def fits(self, pod: Pod, evicted: list[Pod] | None = None) -> bool:
        ev = evicted or []
        cpu = self.cpu_used - sum(p.cpu for p in ev)
        mem = self.mem_used - sum(p.memory_gib for p in ev)
        if cpu + pod.cpu > self.cpu + 1e-9 or mem + pod.memory_gib > self.memory_gib + 1e-9:
            return False
        return pod.gpu == 0 or len(self.free_slots(frozenset(id(p) for p in ev))) >= pod.gpu

    def score(self, pod: Pod) -> float:
        free_cpu = (self.cpu - self.cpu_used - pod.cpu) / self.cpu
        free_mem = (self.memory_gib - self.mem_used - pod.memory_gib) / self.memory_gib
        return (free_cpu + free_mem) / 2


@dataclass(eq=False)
class Pod:
    """A pod of a model Deployment or of a workflow step."""

    name: str
    kind: str  # model | step
    tenant: str
    priority_class: str
    priority: int
    preemption_policy: str
    cpu: float
    memory_gib: float
    gpu: int
    pools: frozenset[str]
    created: float
    pdb: str | None = None
    state: str = "pending"  # pending | running | terminating | done
    node: Node | None = None
    slots: list[int] = field(default_factory=list)
    started: float = 0.0
    nominated: Node | None = None
    victims: list[Pod] = field(default_factory=list)  # of its last preemption
    on_bound: Callable[[Pod], None] = lambda p: None
    on_evicted: Callable[[Pod, str], None] = lambda p, why: None

    @property
    def gpu_index(self) -> int | None:
        """The physical GPU of its first slot (None for CPU pods)."""
        if not self.slots or self.node is None:
            return None
        return self.node.slots[self.slots[0]].gpu


class Cluster:
    """Nodes, pending pods, binding, preemption and eviction bookkeeping."""

    def __init__(self, now: Callable[[], float],
                 terminate: Callable[[Pod, float], None]) -> None:  # fmt: skip
        self.now = now
        self.nodes: list[Node] = []
        self.pending: list[Pod] = []
        self.preemptions: list[Pod] = []  # victims of scheduler preemption
        self._terminate = terminate  # start a pod's graceful termination (the world's clock)
        self.pdb_min: dict[str, int] = {}  # PDB -> minAvailable
        self.unschedulable: list[Pod] = []

    # ------------------------------------------------------------------ pods

    def submit(self, pod: Pod) -> None:
        self.pending.append(pod)

    def bind(self, pod: Pod, node: Node) -> None:
        pod.node = node
        pod.state = "running"
        pod.started = self.now()
        pod.nominated = None
        node.cpu_used += pod.cpu
        node.mem_used += pod.memory_gib
        if pod.gpu:
            free = node.free_slots()
            # spread over physical GPUs: the free slot on the GPU with the fewest pods
            load = {s.gpu: 0 for s in node.slots}
            for i, p in enumerate(node.slot_pod):
                if p is not None:
                    load[node.slots[i].gpu] += 1
            free.sort(key=lambda i: (load[node.slots[i].gpu], i))
            pod.slots = free[: pod.gpu]
            for i in pod.slots:
                node.slot_pod[i] = pod
        node.pods.append(pod)
        pod.on_bound(pod)

    def release(self, pod: Pod) -> None:
        """The pod is gone: give back its node's resources."""
        node = pod.node
        pod.state = "done"
        if pod in self.pending:
            self.pending.remove(pod)
        if node is None:
            return
        node.cpu_used -= pod.cpu
        node.mem_used -= pod.memory_gib
        for i in pod.slots:
            node.slot_pod[i] = None
        if pod in node.pods:
            node.pods.remove(pod)
        pod.node = None

    def evict(self, pod: Pod, why: str, grace_s: float) -> None:
        """Delete a pod gracefully: it keeps its resources for `grace_s`, its owner learns now."""
        if pod.state == "pending":
            self.pending.remove(pod)
            pod.state = "done"
            pod.on_evicted(pod, why)
            return
        if pod.state != "running":
            return
        pod.state = "terminating"
        pod.on_evicted(pod, why)
        self._terminate(pod, grace_s)

    def pdb_allowed(self) -> dict[str, int]:
        """Disruptions each PDB still allows: healthy pods - minAvailable."""
        healthy: dict[str, int] = {}
        for n in self.nodes:
            for p in n.pods:
                if p.pdb is not None and p.state == "running":
                    healthy[p.pdb] = healthy.get(p.pdb, 0) + 1
        return {k: healthy.get(k, 0) - m for k, m in self.pdb_min.items()}

    # ------------------------------------------------------------------ scheduling

    def schedulable_nodes(self, pod: Pod) -> list[Node]:
        return [n for n in self.nodes if n.state == "ready" and n.pool in pod.pools]

    def schedule(self, grace_s: float) -> None:
        """One pass over the pending pods, most important first."""
        self.unschedulable = []
        for pod in sorted(self.pending, key=lambda p: (-p.priority, p.created)):
            if pod.state != "pending":
                continue
            nodes = [n for n in self.schedulable_nodes(pod) if n.fits(pod)]
            if nodes:
                node = max(nodes, key=lambda n: n.score(pod))  # max keeps the first of equals
                self.pending.remove(pod)
                self.bind(pod, node)
                continue
            if (pod.nominated is not None and pod.nominated.state == "ready"
                    and any(v.state == "terminating" for v in pod.victims)):  # fmt: skip
                continue  # waiting for its victims to go
            pod.nominated = None
            if may_preempt(pod.preemption_policy) and self._preempt(pod, grace_s):
                continue
            self.unschedulable.append(pod)

    def _preempt(self, pod: Pod, grace_s: float) -> bool:
        allowed = self.pdb_allowed()
        cands: list[Candidate] = []
        for i, n in enumerate(self.nodes):
            if n.state != "ready" or n.pool not in pod.pools:
                continue
            running = [p for p in n.pods if p.state == "running"]
            c = select_victims_on_node(
                i, running, pod.priority,
                lambda ev, n=n: n.fits(pod, list(ev)),  # type: ignore[misc]
                allowed,
            )  # fmt: skip
            if c is not None:
                cands.append(c)
        best = pick_one_node(cands)
        if best is None:
            return False
        pod.nominated = self.nodes[best.node]
        pod.victims = [v for v in best.victims if isinstance(v, Pod)]
        for v in best.victims:
            assert isinstance(v, Pod)
            self.preemptions.append(v)
            self.evict(v, "preempted", grace_s)
        return True

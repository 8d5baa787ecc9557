"""Nodes and a kube-scheduler stand-in: filter on requests, score least-allocated.

Filters mirror the default plugins that matter here (NodeResourcesFit on cpu,
memory and the extended resource `nvidia.com/gpu`); scoring is
NodeResourcesLeastAllocated (mean free fraction of cpu and memory), ties broken by
node order so runs are deterministic. GPU time-slicing: a node with `gpus: g` and
`gpu_sharing: s` advertises g x s `nvidia.com/gpu`; each slot belongs to one
physical GPU, and a pod is given the GPU with the most free slots.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kisim.core.config import ClusterConfig
from twin.replica import GPU


@dataclass
class Node:
    name: str
    cpu: float
    memory_gib: float
    gpus: list[GPU]
    gpu_sharing: int
    gpu_device: str | None = None  # only GPU pods of this device (None: any)
    cpu_used: float = 0.0
    mem_used: float = 0.0
    gpu_slots_used: list[int] = field(default_factory=list)
    # faults (twin.faults): a NotReady node is tainted NoSchedule; an unhealthy GPU leaves
    # the device plugin's allocatable list
    schedulable: bool = True
    gpu_healthy: list[bool] = field(default_factory=list)

    def fits(self, cpu: float, mem: float, gpu: int) -> bool:
        if self.cpu_used + cpu > self.cpu + 1e-9 or self.mem_used + mem > self.memory_gib + 1e-9:
            return False
        return gpu == 0 or sum(self.gpu_sharing - u for i, u in enumerate(self.gpu_slots_used)
                               if self.gpu_healthy[i]) >= gpu  # fmt: skip

    def score(self, cpu: float, mem: float) -> float:
        return ((self.cpu - self.cpu_used - cpu) / self.cpu
                + (self.memory_gib - self.mem_used - mem) / self.memory_gib) / 2  # fmt: skip


@dataclass(frozen=True)
class Binding:
    node: Node
    gpu: GPU | None
    cpu: float
    mem: float
    gpu_count: int


class Scheduler:
    """Binds pods to nodes or leaves them Pending."""

    def __init__(self, cluster: ClusterConfig) -> None:
        self.nodes: list[Node] = []
        n_gpu = 0
        for nc in cluster.nodes:
            for i in range(nc.count):
                name = nc.name if nc.count == 1 else f"{nc.name}-{i}"
                gpus = [GPU(f"{name}/gpu{g}", n_gpu + g) for g in range(nc.gpus)]
                n_gpu += nc.gpus
                self.nodes.append(Node(name, nc.cpu, nc.memory_gib, gpus, nc.gpu_sharing,
                                       nc.gpu_device, gpu_slots_used=[0] * nc.gpus,
                                       gpu_healthy=[True] * nc.gpus))  # fmt: skip

    def bind(self, cpu: float, mem: float, gpu: int, device: str | None = None) -> Binding | None:
        """Place a pod with these requests, or None (it stays Pending). A GPU pod of `device`
        only goes to nodes whose `gpu_device` is unset or that device."""
        fit = [n for n in self.nodes if n.schedulable and n.fits(cpu, mem, gpu)
               and (gpu == 0 or n.gpu_device is None or n.gpu_device == device)]
        if not fit:
            return None
        node = max(fit, key=lambda n: n.score(cpu, mem))  # max() keeps the first of equals
        node.cpu_used += cpu
        node.mem_used += mem
        dev = None
        if gpu:
            g = min((i for i in range(len(node.gpus)) if node.gpu_healthy[i]),
                    key=lambda i: node.gpu_slots_used[i])  # fmt: skip
            node.gpu_slots_used[g] += gpu
            dev = node.gpus[g]
        return Binding(node, dev, cpu, mem, gpu)

    def release(self, b: Binding) -> None:
        b.node.cpu_used -= b.cpu
        b.node.mem_used -= b.mem
        if b.gpu is not None:
            b.node.gpu_slots_used[b.node.gpus.index(b.gpu)] -= b.gpu_count

    def node(self, name: str) -> Node:
        """The node called `name` (KeyError if none)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

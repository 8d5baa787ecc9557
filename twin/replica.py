"""A Triton replica (one pod's server) as seen from Python: a view on the kernel's arrays.

The request loop keeps replica state in `DataPlane` arrays; the control plane
(pods, scrapes) reads counters through this view, named as Triton and the node
exporters name them: `nv_inference_*`, container CPU seconds, DCGM busy time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twin import kernel as K

if TYPE_CHECKING:
    from twin.dataplane import DataPlane


class GPU:
    """One physical GPU; busy time is the union of all executions on it (DCGM GPU_UTIL)."""

    __slots__ = ("name", "index")

    def __init__(self, name: str, index: int) -> None:
        self.name = name
        self.index = index


class Replica:
    __slots__ = ("dp", "slot", "name", "pool", "gpu", "mem_base", "mem_item")

    def __init__(self, dp: DataPlane, slot: int, name: str, pool: str, gpu: GPU | None,
                 mem_base: float, mem_item: float) -> None:  # fmt: skip
        self.dp, self.slot, self.name, self.pool, self.gpu = dp, slot, name, pool, gpu
        self.mem_base, self.mem_item = mem_base, mem_item

    def _i(self, col: int) -> int:
        return int(self.dp.ri[self.slot, col])

    def _f(self, col: int) -> float:
        return float(self.dp.rf[self.slot, col])

    @property
    def cpu_s(self) -> float:
        return self._f(K.CPUS)

    @property
    def n_success(self) -> int:
        return self._i(K.NSUCC)

    @property
    def n_exec(self) -> int:
        return self._i(K.NEXEC)

    @property
    def n_items(self) -> int:
        return self._i(K.NITEMS)

    @property
    def n_rejected(self) -> int:
        return self._i(K.NREJ)

    @property
    def queue_s_sum(self) -> float:
        return self._f(K.QSUM)

    @property
    def compute_s_sum(self) -> float:
        return self._f(K.CSUM)

    @property
    def request_s_sum(self) -> float:
        return self._f(K.RSUM)

    @property
    def queue_len(self) -> int:
        return self._i(K.QLEN)

    @property
    def idle(self) -> bool:
        return self._i(K.QLEN) == 0 and self._i(K.FREE) == self._i(K.INST)

    def memory_gib(self) -> float:
        return self.mem_base + self.mem_item * (self._i(K.INFL) + self._i(K.QLEN))

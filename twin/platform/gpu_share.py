"""Fractional GPUs: how fast a pod on a shared GPU runs, by sharing mode.

* **Time-slicing** (NVIDIA k8s-device-plugin, ``sharing.timeSlicing``; the same in
  KAI-Scheduler's GPU sharing): a GPU advertised as ``replicas`` slots gives every busy
  process an *equal* time slice, whatever fraction it asked for ("no memory or fault
  isolation"; the plugin's README: requesting more than one shared GPU "does not guarantee
  ... a proportional amount of GPU compute"). k busy pods: each runs k x slower.
* **MPS** (device plugin ``sharing.mps``, v0.15+): each of ``replicas`` clients gets
  ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE = 100 / replicas`` of the SMs and an equal share of
  memory; compute is partitioned, so a pod runs at its SM share whatever its neighbours do
  (memory-bandwidth interference is not modelled).
* **MIG** (NVIDIA MIG user guide, A100-40GB profiles): fixed, isolated instances with a
  number of the GPU's 7 compute slices; a pod on ``g``g.* runs at g/7 of the GPU and its
  neighbours never slow it.
"""

from __future__ import annotations

from dataclasses import dataclass

A100_40GB: dict[str, tuple[int, int]] = {
    "1g.5gb": (1, 5), "2g.10gb": (2, 10), "3g.20gb": (3, 20), "4g.20gb": (4, 20),
    "7g.40gb": (7, 40),
}  # fmt: skip
"""MIG profile -> (compute slices of 7, memory GB): NVIDIA MIG user guide, A100-40GB table."""
MIG_SLICES = 7
"""Compute slices of an A100 (and H100) GPU."""


@dataclass(frozen=True)
class Slot:
    """One schedulable share of one physical GPU."""

    gpu: int  # index of the physical GPU on its node
    mode: str  # none | time-slicing | mps | mig
    fraction: float  # the compute share it is guaranteed (1/replicas for MPS, g/7 for MIG)


def slots_of(mode: str, replicas: int, mig_profiles: list[str], gpus: int) -> list[Slot]:
    """The slots a node advertises: `replicas` per GPU (time-slicing, MPS), one per MIG
    instance, or one per GPU."""
    out: list[Slot] = []
    for g in range(gpus):
        if mode == "mig":
            if sum(A100_40GB[p][0] for p in mig_profiles) > MIG_SLICES:
                raise ValueError(f"MIG profiles {mig_profiles} use more than {MIG_SLICES} slices")
            out += [Slot(g, mode, A100_40GB[p][0] / MIG_SLICES) for p in mig_profiles]
        elif mode in ("time-slicing", "mps"):
            out += [Slot(g, mode, 1.0 / replicas)] * replicas
        else:
            out.append(Slot(g, "none", 1.0))
    return out


def slowdown(slot: Slot, busy_on_gpu: int) -> float:
    """Execution-time multiplier of a pod on `slot` while `busy_on_gpu` pods (itself
    included) are busy on the same physical GPU."""
    if slot.mode == "time-slicing":
        return float(max(busy_on_gpu, 1))  # equal slices, whatever was requested
    if slot.mode in ("mps", "mig"):
        return 1.0 / slot.fraction  # its own partition, neighbours irrelevant
    return 1.0

"""Fractional GPUs pinned to the NVIDIA device plugin (time-slicing, MPS) and MIG."""

from __future__ import annotations

import pytest

from twin.platform.gpu_share import A100_40GB, MIG_SLICES, slots_of, slowdown


def test_time_slicing_gives_equal_slices_whatever_the_request() -> None:
    """Time-slicing: every busy process gets an equal time slice, and a slot gives no
    guaranteed fraction (NVIDIA k8s-device-plugin README, "Shared Access to GPUs")."""
    slots = slots_of("time-slicing", 4, [], 1)
    assert len(slots) == 4
    for k in (1, 2, 3, 4):
        assert slowdown(slots[0], k) == k


def test_mps_partitions_sm_share() -> None:
    """MPS: each of `replicas` clients gets 100/replicas % of the SMs, alone or not
    (device plugin sharing.mps; CUDA_MPS_ACTIVE_THREAD_PERCENTAGE)."""
    slots = slots_of("mps", 4, [], 2)
    assert len(slots) == 8 and {s.gpu for s in slots} == {0, 1}
    assert slowdown(slots[0], 1) == pytest.approx(4.0) == slowdown(slots[0], 4)


def test_mig_isolation_and_profiles() -> None:
    """MIG: fixed isolated instances (A100-40GB: 1g.5gb ... 7g.40gb of 7 compute slices);
    neighbours never change a pod's speed, and a layout over 7 slices is impossible
    (NVIDIA MIG user guide, supported profiles)."""
    slots = slots_of("mig", 1, ["3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"], 1)
    assert [round(s.fraction * MIG_SLICES) for s in slots] == [3, 2, 1, 1]
    assert slowdown(slots[0], 1) == slowdown(slots[0], 4) == pytest.approx(7 / 3)
    assert A100_40GB["7g.40gb"] == (7, 40) and A100_40GB["1g.5gb"] == (1, 5)
    with pytest.raises(ValueError):
        slots_of("mig", 1, ["4g.20gb", "4g.20gb"], 1)

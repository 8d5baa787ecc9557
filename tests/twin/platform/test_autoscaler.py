"""Cluster Autoscaler pinned to its FAQ: expanders, utilisation, scale-down timings."""

from __future__ import annotations

import numpy as np

from kisim.core.platform import AutoscalerSpec
from twin.platform.autoscaler import Group, Request, ScaleDown, estimate, expand, utilisation


def test_documented_defaults() -> None:
    """--scan-interval 10s, --scale-down-utilization-threshold 0.5, --scale-down-unneeded-time
    10m, --scale-down-delay-after-add 10m, --expander random (cluster-autoscaler FAQ, "What
    are the parameters to CA?")."""
    a = AutoscalerSpec()
    assert (a.scan_interval_s, a.scale_down_utilization_threshold, a.scale_down_unneeded_time_s,
            a.scale_down_delay_after_add_s, a.expander) == (10.0, 0.5, 600.0, 600.0, "random")


def test_scale_down_after_unneeded_time_and_delay_after_add() -> None:
    """A node under the threshold is deleted only after 10 min unneeded and 10 min after the
    last scale-up; going above the threshold resets its timer (FAQ, "How does scale-down
    work?")."""
    sd = ScaleDown()
    sd.last_scale_up = 0.0
    assert not sd.observe(0.0, "n", 0.3, True)
    assert not sd.observe(599.0, "n", 0.3, True)
    assert sd.observe(600.0, "n", 0.3, True)
    assert not sd.observe(610.0, "n", 0.6, True)  # busy again: timer reset
    assert not sd.observe(620.0, "n", 0.2, True)
    assert not sd.observe(1219.0, "n", 0.2, True)
    assert sd.observe(1220.0, "n", 0.2, True)
    sd2 = ScaleDown()
    sd2.last_scale_up = 500.0
    sd2.observe(0.0, "m", 0.1, True)
    assert not sd2.observe(700.0, "m", 0.1, True)  # unneeded long enough, but a recent scale-up
    assert sd2.observe(1100.0, "m", 0.1, True)
    assert not sd2.observe(2000.0, "x", 0.1, False)  # pods that cannot move keep it


def test_gpu_node_utilisation_counts_gpu_only() -> None:
    """On a node with GPUs CA's utilisation is the GPU share alone (simulator/utilization)."""
    assert utilisation(7.0, 8.0, 30.0, 32.0, 0, 1) == 0.0
    assert utilisation(1.0, 8.0, 1.0, 32.0, 0, 0) == 0.125
    assert utilisation(1.0, 8.0, 20.0, 32.0, 0, 0) == 0.625


def test_expanders() -> None:
    """least-waste picks the group leaving the least idle CPU and memory, most-pods the one
    helping most pods, priority the highest user priority (FAQ, "What are Expanders?")."""
    pending = [Request(2.0, 4.0, 0, frozenset({"small", "big"})) for _ in range(3)]
    groups = {"small": Group("small", 4.0, 8.0, 0, room=5, priority=1),
              "big": Group("big", 16.0, 64.0, 0, room=1, priority=5)}
    opts = [o for g in groups.values() if (o := estimate(g, pending)) is not None]
    by = {o.group: o for o in opts}
    assert by["small"].nodes == 2 and by["big"].nodes == 1 and by["big"].pods == 3
    rng = np.random.default_rng(0)
    assert expand(opts, "least-waste", groups, rng).group == "small"  # type: ignore[union-attr]
    assert expand(opts, "priority", groups, rng).group == "big"  # type: ignore[union-attr]
    assert expand(opts, "most-pods", groups, rng).group in {"small", "big"}  # type: ignore[union-attr]
    picks = {expand(opts, "random", groups, np.random.default_rng(s)).group  # type: ignore[union-attr]
             for s in range(20)}
    assert picks == {"small", "big"}
    assert estimate(Group("full", 4.0, 8.0, 0, room=0), pending) is None

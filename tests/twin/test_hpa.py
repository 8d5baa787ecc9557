"""kisim.core.hpa against hand-computed controller decisions.

Every expected number is worked out in the comment beside it from the Go source's
rules (target 60 % unless stated, requests of 1 core = 1000 m).
"""

from __future__ import annotations

import pytest

from kisim.core.config import HPAConfig, ScalingPolicy
from kisim.core.hpa import (
    HorizontalPodAutoscaler,
    PodSample,
    ReplicaComputeError,
    _milli,
    get_resource_replicas,
    get_resource_utilization_ratio,
    group_pods,
)

NOW = 1000.0


def pod(
    name: str,
    usage: float | None,
    request: float = 1.0,
    *,
    phase: str = "Running",
    ready: bool = True,
    deleting: bool = False,
    start: float | None = -1000.0,
    transition: float | None = -990.0,
    ts: float = NOW,
    window: float = 15.0,
) -> PodSample:
    """A pod long past its CPU initialisation period unless told otherwise."""
    return PodSample(name, phase, deleting, ready, start, transition, request, usage, ts, window)


def pods(n: int, usage: float, prefix: str = "p", **kw: object) -> list[PodSample]:
    return [pod(f"{prefix}{i}", usage, **kw) for i in range(n)]  # type: ignore[arg-type]


def rec(current: int, ps: list[PodSample], target: int = 60, now: float = NOW) -> int:
    return get_resource_replicas(current, target, 0.1, ps, now)


# --------------------------------------------------------------------------- recommendation


def test_utilization_is_sum_usage_over_sum_requests_truncated() -> None:
    # 1800 m of 2000 m request + 0 m of 1000 m: 1800*100 // 3000 = 60 % (the mean of
    # per-pod utilisations would be 45 %); ratio 60/60 = 1.0
    assert get_resource_utilization_ratio({"a": 1800, "b": 0}, {"a": 2000, "b": 1000}, 60) == (
        1.0,
        60,
    )
    # 661 m / 1000 m = 66.1 % -> int 66 -> 66/60 = 1.1
    assert get_resource_utilization_ratio({"a": 661}, {"a": 1000}, 60) == (66 / 60, 66)
    with pytest.raises(ReplicaComputeError):
        get_resource_utilization_ratio({"x": 5}, {"a": 1000}, 60)  # no request total


def test_milli_value_rounds_up_without_float_noise() -> None:
    # Quantity.MilliValue() is ceil: 0.5 m -> 1 m; 1 core -> 1000 m
    assert (_milli(0.0005), _milli(1.0)) == (1, 1000)
    # 2.007 * 1000 == 2007.0000000000002 in floats; the quantity is exactly 2007 m
    assert (_milli(2.007), _milli(0.7)) == (2007, 700)


def test_recommendation_is_ceil_of_ratio_times_ready() -> None:
    # 4 pods at 900 m -> 90 % -> ratio 1.5 -> ceil(1.5 * 4) = 6
    assert rec(4, pods(4, 0.9)) == 6
    # 3 pods at 700 m -> 70 % -> 70/60 = 1.1667 -> 3 * 1.1667 = 3.5 -> 4
    assert rec(3, pods(3, 0.7)) == 4
    # 10 pods at 150 m -> 15 % -> 0.25 -> ceil(2.5) = 3
    assert rec(10, pods(10, 0.15)) == 3


def test_tolerance_band_edges_are_inclusive() -> None:
    # 66 % -> 66/60 = 1.1 = 1 + 0.1: inside the band -> keep 4
    assert rec(4, pods(4, 0.66)) == 4
    # 660.5 m rounds up to 661 m, 66.1 % truncates to 66 % -> still keep 4
    assert rec(4, pods(4, 0.6605)) == 4
    # 67 % -> 1.1167 -> ceil(4 * 1.1167 = 4.467) = 5
    assert rec(4, pods(4, 0.67)) == 5
    # 54 % -> 0.9 = 1 - 0.1: inside -> keep 10
    assert rec(10, pods(10, 0.54)) == 10
    # 53 % -> 0.8833 -> ceil(10 * 0.8833 = 8.83) = 9
    assert rec(10, pods(10, 0.53)) == 9


def test_missing_pods_count_as_full_request_on_scale_down() -> None:
    # 4 ready at 150 m (15 % -> ratio 0.25) + 1 Running pod without a metric.
    # Fill 1000 m: (600 + 1000) / 5000 = 32 % -> 0.5333 -> ceil(5 * 0.5333 = 2.67) = 3
    # (ignoring the missing pod would have given ceil(0.25 * 4) = 1)
    assert rec(5, pods(4, 0.15) + [pod("m", None)]) == 3


def test_missing_pods_count_as_zero_on_scale_up() -> None:
    # 1 ready at 1200 m (120 % -> 2.0) + 1 missing. Fill 0: 1200 / 2000 = 60 % -> 1.0,
    # inside the band -> keep 2
    assert rec(2, [pod("a", 1.2), pod("m", None)]) == 2
    # 1 ready at 1200 m + 3 missing: 1200 / 4000 = 30 % -> 0.5: the direction flipped
    # (2.0 -> 0.5) -> keep 4
    assert rec(4, [pod("a", 1.2)] + pods(3, None, prefix="m")) == 4  # type: ignore[arg-type]


def test_scale_down_with_more_metrics_than_current_keeps_current() -> None:
    # spec lowered to 2 while 4 pods exist: 3 at 300 m + 1 missing -> ratio 0.5;
    # fill: (900 + 1000) / 4000 = 47 % -> 0.7833 -> ceil(4 * 0.7833 = 3.13) = 4 > 2,
    # a "scale-down" that would raise the count -> keep 2
    assert rec(2, pods(3, 0.3) + [pod("m", None)]) == 2


def test_unready_pods_zero_on_scale_up_ignored_on_scale_down() -> None:
    # 3 ready at 1200 m (120 % -> 2.0) + 1 Pending: scale-up, Pending counts as 0:
    # 3600 / 4000 = 90 % -> 1.5 -> ceil(1.5 * 4) = 6
    assert rec(4, pods(3, 1.2) + [pod("u", None, phase="Pending")]) == 6
    # 2 ready at 900 m (1.5) + 2 Pending: 1800 / 4000 = 45 % -> 0.75: flipped -> keep 4
    assert rec(4, pods(2, 0.9) + pods(2, 0.5, prefix="u", phase="Pending")) == 4
    # 2 ready at 300 m (0.5) + 2 Pending: scale-down, unready simply left out:
    # ceil(0.5 * 2) = 1
    assert rec(4, pods(2, 0.3) + pods(2, 0.9, prefix="u", phase="Pending")) == 1


def test_deleted_and_failed_pods_are_ignored() -> None:
    # 2 ready at 900 m -> 1.5 -> ceil(3.0) = 3; the terminating and the Failed pod
    # (with idle metrics that would pull the ratio to 1800/4000 = 45 %) are dropped
    ps = pods(2, 0.9) + [pod("d", 0.0, deleting=True), pod("f", 0.0, phase="Failed")]
    assert rec(4, ps) == 3


def test_group_pods_cpu_readiness_rule() -> None:
    kw = {"now": NOW, "cpu_initialization_period": 300.0, "readiness_delay": 30.0}
    ps = [
        # within init (900 + 300 > 1000), Ready at 950, sample at 970 >= 950 + 15: ready
        pod("a", 0.5, start=900, transition=950, ts=970),
        # same but sample at 960 < 965: window began before the transition -> unready
        pod("b", 0.5, start=900, transition=950, ts=960),
        # within init, not Ready -> unready
        pod("c", 0.5, ready=False, start=900, transition=905),
        # past init (0 + 300 < 1000), not Ready, transition 10 < 0 + 30: never ready -> unready
        pod("d", 0.5, ready=False, start=0, transition=10),
        # past init, not Ready since 500 (was ready before) -> its metric is used
        pod("e", 0.5, ready=False, start=0, transition=500),
        # 700 + 300 == 1000 is not After(now): past init, Ready -> ready even though
        # the sample (995) is within a window of the transition (990 + 15)
        pod("f", 0.5, start=700, transition=990, ts=995),
        pod("g", 0.5, start=None),  # no start time -> unready
        pod("h", 0.5, transition=None),  # no Ready condition -> unready
        pod("i", None),  # no metric -> missing (checked before readiness)
        pod("j", None, phase="Pending"),  # Pending -> unready (before the metric check)
        pod("k", 0.5, deleting=True, phase="Pending"),  # deletion wins -> ignored
    ]
    ready, unready, missing, ignored = group_pods(ps, **kw)
    assert ready == 3  # a, e, f
    assert unready == {"b", "c", "d", "g", "h", "j"}
    assert missing == {"i"}
    assert ignored == {"k"}


def test_no_metrics_or_no_request_is_an_error() -> None:
    with pytest.raises(ReplicaComputeError):
        rec(2, pods(2, None))  # type: ignore[arg-type]
    with pytest.raises(ReplicaComputeError):
        rec(2, pods(2, 0.5, phase="Pending"))  # all unready: nothing left
    with pytest.raises(ReplicaComputeError):
        rec(2, [])
    with pytest.raises(ReplicaComputeError):
        rec(2, [pod("a", 0.9), pod("b", 0.9, request=0.0)])  # BestEffort pod: no request


# --------------------------------------------------------------------------- controller


def hpa(lo: int = 1, hi: int = 10, **cfg: object) -> HorizontalPodAutoscaler:
    return HorizontalPodAutoscaler(HPAConfig(**cfg), lo, hi)  # type: ignore[arg-type]


def test_sync_error_keeps_current_and_clears_recommendation() -> None:
    h = hpa()
    assert h.sync(0.0, 3, pods(3, None)) == 3  # type: ignore[arg-type]
    assert h.last_recommendation is None


def test_scale_down_waits_300_s_after_last_high_recommendation() -> None:
    h = hpa()
    # t=0: 4 pods at 900 m -> rec 6; history [(0,4) initial]; down max(4,6)=6, up
    # window 0 -> 6; up limit max(4+4, ceil(4*2)) = 8 -> 6
    assert h.sync(0.0, 4, pods(4, 0.9)) == 6
    assert h.last_recommendation == 6
    low = pods(6, 0.3)  # 30 % -> 0.5 -> rec ceil(3.0) = 3
    for t in range(15, 150, 15):  # (0, 6) is inside (t - 300, t]: held at 6
        assert h.sync(float(t), 6, low) == 6
        assert h.last_recommendation == 3
    # t=150: 60 % -> ratio 1.0 -> rec = current 6 (a new "high" sample at 150)
    assert h.sync(150.0, 6, pods(6, 0.6)) == 6
    # t=300: (0, 6) drops out (0 is not after 300-300) but (150, 6) holds it
    for t in range(165, 450, 15):
        assert h.sync(float(t), 6, low) == 6
    # t=450: cutoff 150, (150, 6) is not after it; max of the rest is 3; down limit
    # int(6 * (1 - 100/100)) = 0 -> bounded by minReplicas 1 only -> 3
    assert h.sync(450.0, 6, low) == 3


def test_initial_recommendation_blocks_early_scale_down() -> None:
    h = hpa()
    low = pods(8, 0.15)  # 15 % -> 0.25 -> rec ceil(2.0) = 2
    assert h.sync(0.0, 8, low) == 8  # initial record (0, 8) caps the stabilised value
    assert h.sync(285.0, 8, low) == 8
    assert h.sync(300.0, 8, low) == 2  # (0, 8) left the window; limit 0 -> 2


def test_scale_up_pods_policy_then_period_memory() -> None:
    h = hpa(hi=30)
    hot = [pod("a", 6.0)]  # 600 % -> ratio 10 -> rec 10
    # limit: max(Pods 1+4 = 5, Percent ceil(1*2) = 2) = 5
    assert h.sync(0.0, 1, hot) == 5
    busy = pods(5, 2.4)  # 240 % -> 4.0 -> rec 20
    # t=10: event +4 at 0 is after 10-15 -> period start 5-4 = 1 -> limit 5 -> stay 5
    assert h.sync(10.0, 5, busy) == 5
    # t=15: 0 is not after 15-15 -> start 5 -> max(5+4, ceil(5*2)) = 10
    assert h.sync(15.0, 5, busy) == 10


def test_scale_up_percent_policy_and_select_min() -> None:
    hot = pods(10, 1.8)  # 180 % -> 3.0 -> rec 30
    # Max of (Pods 10+4 = 14, Percent ceil(10*2) = 20) = 20
    assert hpa(hi=30).sync(0.0, 10, hot) == 20
    # Min of the same = 14
    assert hpa(hi=30, scale_up_select="Min").sync(0.0, 10, hot) == 14
    # Disabled: the limit is the current count -> 10
    assert hpa(hi=30, scale_up_select="Disabled").sync(0.0, 10, hot) == 10


def test_scale_down_rate_limits() -> None:
    one_pod = [ScalingPolicy(type="Pods", value=1, period_s=60)]
    h = hpa(scale_down_stabilization_s=0, scale_down_policies=one_pod)
    # 5 pods at 60 m -> 6 % -> 0.1 -> rec 1; limit 5 - 1 = 4
    assert h.sync(0.0, 5, pods(5, 0.06)) == 4
    # t=15: removal of 1 at 0 is inside 60 s -> start 4+1 = 5 -> limit 4 = current
    assert h.sync(15.0, 4, pods(4, 0.06)) == 4
    # t=60: 0 is not after 60-60 -> start 4 -> limit 3
    assert h.sync(60.0, 4, pods(4, 0.06)) == 3

    ten_pct = [ScalingPolicy(type="Percent", value=10, period_s=15)]
    # int(10 * 0.9) = 9 ; int(5 * 0.9) = int(4.5) = 4 (truncation, not ceil)
    assert (
        hpa(scale_down_stabilization_s=0, scale_down_policies=ten_pct).sync(0.0, 10, pods(10, 0.06))
        == 9
    )
    assert (
        hpa(scale_down_stabilization_s=0, scale_down_policies=ten_pct).sync(0.0, 5, pods(5, 0.06))
        == 4
    )
    # default 100 % per 15 s: 8 pods at 120 m -> 12 % -> 0.2 -> rec ceil(1.6) = 2; limit 0
    assert hpa(scale_down_stabilization_s=0).sync(0.0, 8, pods(8, 0.12)) == 2
    # Disabled: stays 8
    assert (
        hpa(scale_down_stabilization_s=0, scale_down_select="Disabled").sync(0.0, 8, pods(8, 0.12))
        == 8
    )


def test_min_max_clamping() -> None:
    # current above max: straight to max, metrics not even read
    assert hpa(hi=10).sync(0.0, 12, []) == 10
    # current below min: straight to min
    assert hpa(lo=2).sync(0.0, 1, pods(1, 0.0)) == 2
    # rec 6 (4 at 900 m), rate limit 8, maxReplicas 5 -> 5
    assert hpa(hi=5).sync(0.0, 4, pods(4, 0.9)) == 5
    # rec ceil(4 * 0.1) = 1 (6 %), down limit 0, minReplicas 3 -> 3
    assert hpa(lo=3, scale_down_stabilization_s=0).sync(0.0, 4, pods(4, 0.06)) == 3
    # minReplicas 0 means "unset" -> 1: rec 1 -> 1
    assert hpa(lo=0, scale_down_stabilization_s=0).sync(0.0, 4, pods(4, 0.06)) == 1
    with pytest.raises(ValueError):
        hpa(lo=3, hi=2)


def test_zero_replicas_disables_autoscaling() -> None:
    h = hpa()
    assert h.sync(0.0, 0, pods(2, 5.0)) == 0
    assert h.last_recommendation is None


def test_set_target_moves_the_recommendation() -> None:
    h = hpa()
    ps = pods(4, 0.6)
    assert h.sync(0.0, 4, ps) == 4  # 60 % at target 60 -> keep
    h.set_target(0.3)
    # 60/30 = 2.0 -> rec 8; limit max(4+4, 8) = 8 -> 8
    assert h.sync(15.0, 4, ps) == 8
    assert h.target_pct == 30


def test_clamp_events_count_against_the_rate_budget() -> None:
    slow = [ScalingPolicy(type="Pods", value=1, period_s=60)]
    h = hpa(lo=4, scale_up_policies=slow)
    # t=0: current 1 < minReplicas 4 -> 4, stored as a +3 scale-up event
    assert h.sync(0.0, 1, pods(1, 0.9)) == 4
    # t=15: 4 at 900 m -> rec 6; period start 4 - 3 = 1 -> limit 1 + 1 = 2 < current 4,
    # raised to 4 (never a scale-down on a scale-up proposal) -> stay 4
    assert h.sync(15.0, 4, pods(4, 0.9)) == 4
    # t=60: the +3 at 0 is not after 60-60 -> start 4 -> limit 5 -> 5
    assert h.sync(60.0, 4, pods(4, 0.9)) == 5
    # mirror image: current 12 > maxReplicas 10 -> 10, stored as a -2 scale-down event;
    # t=15: rec 1 (10 at 60 m -> 6 % -> 0.1); start 10 + 2 = 12 -> limit 12 - 1 = 11 > 10,
    # lowered to 10 (never a scale-up on a scale-down proposal) -> stay 10
    h = hpa(hi=10, scale_down_stabilization_s=0, scale_down_policies=slow)
    assert h.sync(0.0, 12, []) == 10
    assert h.sync(15.0, 10, pods(10, 0.06)) == 10
    # t=60: start 10 -> limit 9 -> 9
    assert h.sync(60.0, 10, pods(10, 0.06)) == 9


def test_scale_down_select_max_and_min() -> None:
    two = [
        ScalingPolicy(type="Pods", value=1, period_s=15),
        ScalingPolicy(type="Percent", value=50, period_s=15),
    ]
    ps = pods(10, 0.06)  # 6 % -> 0.1 -> rec ceil(1.0) = 1
    # limits: Pods 10 - 1 = 9, Percent int(10 * 0.5) = 5
    # Max (largest change) -> the lower limit 5
    assert hpa(scale_down_stabilization_s=0, scale_down_policies=two).sync(0.0, 10, ps) == 5
    # Min (smallest change) -> the higher limit 9
    h = hpa(scale_down_stabilization_s=0, scale_down_policies=two, scale_down_select="Min")
    assert h.sync(0.0, 10, ps) == 9


def test_a_pool_that_cannot_run_pods_gets_no_hpa(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """max_replicas 0 (e.g. a CPU-only cluster's GPU pool): no Deployment to scale, no HPA —
    the controller leaves the pool alone instead of refusing maxReplicas 0 < minReplicas 1."""
    from twin.backend import TwinBackend

    sc = make_scenario(**{"controller.name": "hpa", "duration_s": 60.0, "pools.gpu.replicas": 0,
                          "pools.gpu.max_replicas": 0})  # fmt: skip
    assert sc.controller.hpa.pools is None and sc.hpa_pools() == ["cpu"]
    b = TwinBackend()
    b.reset(sc, 0)
    assert b.hpa is not None and set(b.hpa.hpas) == {"cpu"}
    w = b.advance(60.0)  # four syncs
    assert (w.gpu_desired, w.gpu_ready, w.gpu_pending) == (0, 0, 0)

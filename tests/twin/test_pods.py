"""Pods on nodes: Pending when GPUs run out, start-up delay before traffic, graceful
termination, and the HPA's 300 s scale-down stabilisation in a spike.

All runs start from `configs/scenarios/default.yaml` (one RTX 3080 node with
`gpu_sharing: 1`, two CPU nodes) with the static controller unless stated, so the
test actions (`TwinBackend.apply`) are the only changes of replicas.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from kisim.core.backend import Action, PoolSetting
from kisim.core.config import Scenario
from twin import kernel as K
from twin.backend import TwinBackend
from twin.pods import Phase

USERS_50 = {"name": "constant", "params": {"level": 50}}
Z_BINOMIAL = 4.5  # two-sided p ~ 7e-6 for the one binomial share check below


def scale(b: TwinBackend, **replicas: int) -> None:
    b.apply(Action(pools={p: PoolSetting(replicas=n) for p, n in replicas.items()}))


def static(make_scenario: Callable[..., Scenario], **more: object) -> Scenario:
    return make_scenario(**{"controller.name": "static", "traffic.pattern": USERS_50, **more})


# --------------------------------------------------------------------------- Pending


def test_second_gpu_pod_stays_pending_on_one_gpu(make_scenario) -> None:  # type: ignore[no-untyped-def]
    b = TwinBackend()
    b.reset(static(make_scenario), 0)
    b.advance(30.0)
    scale(b, gpu=2)
    ws = [b.advance(15.0) for _ in range(8)]  # 2 minutes: start-up would long be over
    for w in ws:
        assert (w.gpu_desired, w.gpu_ready, w.gpu_pending) == (2, 1, 1)
        # the Pending pod accrues pending time, and no replica cost (it is not bound)
        assert w.pending_pod_s == pytest.approx(15.0)
        assert w.gpu_replica_s == pytest.approx(15.0)
    pending = [p for p in b.pods.pods["gpu"] if p.binding is None]
    assert len(pending) == 1 and pending[0].phase is Phase.PENDING
    assert pending[0].replica is None and pending[0].ready_at is None
    gpu_node = next(n for n in b.sched.nodes if n.gpus)
    assert gpu_node.gpu_slots_used == [1]
    # the running GPU pod still serves; nothing routed to the Pending one
    assert ws[-1].served > 0 and len(b.dp.ready_lists[0]) == 1

    # scaling back deletes the unscheduled pod first (ReplicaSet ranking), not the ready one
    ready_pod = next(p for p in b.pods.pods["gpu"] if p.binding is not None)
    scale(b, gpu=1)
    w = b.advance(15.0)
    assert (w.gpu_desired, w.gpu_ready, w.gpu_pending, w.pending_pod_s) == (1, 1, 0, 0.0)
    assert b.pods.pods["gpu"] == [ready_pod]


def test_two_gpu_pods_run_with_time_slicing(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """gpu_sharing 2: the node advertises 2 nvidia.com/gpu on one physical GPU.

    Start-up with the model-load noise off (cv 0): created at 30 s, scheduled
    +0.2 s, containers +3 s (33.2), model loaded 12 s later (45.2); the readiness
    probe runs 5 s after start and every 5 s: 38.2, 43.2 (not loaded), 48.2 -> Ready.
    """
    sc = static(make_scenario, **{
        "cluster.nodes": [
            {"name": "gpu-node", "count": 1, "cpu": 8, "memory_gib": 32, "gpus": 1,
             "gpu_sharing": 2},
            {"name": "cpu-node", "count": 2, "cpu": 8, "memory_gib": 32},
        ],
        "calibration.devices.rtx3080.startup.model_load_cv": 0.0,
    })  # fmt: skip
    b = TwinBackend()
    b.reset(sc, 0)
    b.advance(30.0)
    scale(b, gpu=2)
    ws = [b.advance(15.0) for _ in range(4)]
    assert [w.gpu_pending for w in ws] == [0, 0, 0, 0]
    assert sum(w.pending_pod_s for w in ws) == pytest.approx(0.2)  # the scheduling latency
    assert [w.gpu_ready for w in ws] == [1, 2, 2, 2]  # Ready at 48.2, inside (45, 60]
    new = max(b.pods.pods["gpu"], key=lambda p: p.seq)
    assert new.ready_at == pytest.approx(48.2, abs=1e-9)
    gpus = {p.binding.gpu.name for p in b.pods.pods["gpu"]}  # type: ignore[union-attr]
    assert len(gpus) == 1  # both on the one physical GPU
    assert all(p.replica is not None and p.replica.n_success > 0 for p in b.pods.pods["gpu"])


# --------------------------------------------------------------------------- start-up delay


@pytest.mark.parametrize(("model_load_s", "ready_after"), [
    # schedule 0.2 + containers 2.0 -> running at +2.2; probes at +5, +10, +15 from there
    (4.0, 2.2 + 5.0),   # loaded at +4 < first probe at +5
    (12.0, 2.2 + 15.0),  # loaded at +12: probes at +5, +10 fail, +15 passes
])  # fmt: skip
def test_new_pod_takes_no_traffic_before_ready(make_scenario, model_load_s, ready_after) -> None:  # type: ignore[no-untyped-def]
    sc = static(make_scenario, **{
        "calibration.devices.desktop-cpu.startup.model_load_s": model_load_s,
        "calibration.devices.desktop-cpu.startup.model_load_cv": 0.0,
    })  # fmt: skip
    b = TwinBackend()
    b.reset(sc, 1)
    b.advance(30.0)
    old = {p.name for p in b.pods.pods["cpu"]}
    scale(b, cpu=2)
    (new,) = [p for p in b.pods.pods["cpu"] if p.name not in old]
    t_ready = 30.0 + ready_after

    def successes() -> dict[str, int]:
        return {p.name: p.replica.n_success for ps in b.pods.pods.values() for p in ps
                if p.replica is not None}  # fmt: skip

    def in_flight() -> int:
        n = b.dp.n_slots
        return int(b.dp.ri[:n, K.QLEN].sum() + b.dp.ri[:n, K.INFL].sum())

    before = successes()
    seen_new = n_after = 0
    slack = None
    while b.now < t_ready + 20.0 - 1e-9:
        w = b.advance(0.5)
        after = successes()
        delta = {k: v - before.get(k, 0) for k, v in after.items()}
        before = after
        assert sum(delta.values()) == w.served  # every answer is attributed to a pod
        if w.t_end <= t_ready:
            assert new.phase is not Phase.READY and new.replica is None
            assert new.name not in delta  # nothing served by the new pod
            assert w.cpu_ready == 1 and len(b.dp.ready_lists[1]) == 1
            assert not any(k.endswith(new.name) for k in b.obs.store.keys())  # Prometheus too
        elif w.t_start < t_ready:
            slack = in_flight()  # requests routed before Ready that may complete after
        else:
            seen_new += delta.get(new.name, 0)
            n_after += w.served
    assert new.ready_at == pytest.approx(t_ready, abs=1e-9)
    assert new.running_at == pytest.approx(30.0 + 2.2, abs=1e-9)
    # After Ready it is an endpoint like the others: one GPU and two CPU endpoints, a
    # random Service -> each request goes to it with probability 1/3 (binomial), up to
    # the requests in flight at either end of the span.
    assert slack is not None and seen_new > 0
    sd = math.sqrt(n_after * (1 / 3) * (2 / 3))
    assert abs(seen_new - n_after / 3) <= Z_BINOMIAL * sd + slack + in_flight()


# --------------------------------------------------------------------------- termination


def _heavy(make_scenario: Callable[..., Scenario], grace_s: float) -> Scenario:
    """200 users for 60 s, then none; 3 CPU replicas slowed down (batch of 4 = 130 ms)
    so they always have a queue; static controller."""
    return make_scenario(**{
        "controller.name": "static",
        "traffic.pattern": {"name": "step", "params": {"levels": [200, 0], "step_s": 60}},
        "pools.cpu.replicas": 3,
        "calibration.devices.desktop-cpu.service.base_ms": 40.0,
        "calibration.devices.desktop-cpu.service.per_item_ms": 30.0,
        "calibration.devices.desktop-cpu.startup.termination_grace_s": grace_s,
    })  # fmt: skip


def test_graceful_scale_down_loses_no_request(make_scenario) -> None:  # type: ignore[no-untyped-def]
    b = TwinBackend()
    b.reset(_heavy(make_scenario, grace_s=30.0), 0)
    ws = [b.advance(30.0)]
    state = {p.name: (p.replica.queue_len, int(b.dp.ri[p.replica.slot, K.INFL]),
                      p.replica.n_success) for p in b.pods.pods["cpu"]}  # fmt: skip
    scale(b, cpu=1)
    victims = [p for p in b.pods.pods["cpu"] if p.deleting]
    assert len(victims) == 2
    # the newest two go (ReplicaSet ranking), and they had work: the test is not vacuous
    assert {v.seq for v in victims} == set(sorted(p.seq for p in b.pods.pods["cpu"])[-2:])
    busy = sum(state[v.name][0] + state[v.name][1] for v in victims)
    assert busy > 10, "victims had nothing queued: the scenario does not test draining"
    reps = {v.name: v.replica for v in victims}
    ws += [b.advance(15.0) for _ in range(6)]  # to 120 s; users stop at 60 s
    for v in victims:
        assert v.phase is Phase.GONE and v not in b.pods.pods["cpu"]
        q, infl, n0 = state[v.name]
        # everything queued or executing at deletion completed, and nothing new came
        assert reps[v.name].n_success - n0 == q + infl
        assert reps[v.name].n_rejected == 0
    offered = sum(w.offered for w in ws)
    served = sum(w.served for w in ws)
    errors = sum(w.errors for w in ws)
    n = b.dp.n_slots
    in_flight = int(b.dp.ri[:n, K.QLEN].sum() + b.dp.ri[:n, K.INFL].sum())
    assert (errors, in_flight) == (0, 0)
    assert offered == served
    assert ws[-1].cpu_ready == 1 and ws[-1].cpu_desired == 1
    # the victims stopped costing once drained, long before the grace period ends
    assert sum(w.cpu_replica_s for w in ws[1:]) < 90 * 1 + 2 * 30


def test_grace_period_over_fails_the_queue_only(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """terminationGracePeriodSeconds 0: the queue is dropped at once (errors), the
    executing batches still complete; offered = served + errors still holds."""
    b = TwinBackend()
    b.reset(_heavy(make_scenario, grace_s=0.0), 0)
    ws = [b.advance(30.0)]
    state = {p.name: (p.replica.queue_len, int(b.dp.ri[p.replica.slot, K.INFL]),
                      p.replica.n_success) for p in b.pods.pods["cpu"]}  # fmt: skip
    scale(b, cpu=1)
    victims = [p for p in b.pods.pods["cpu"] if p.deleting]
    reps = {v.name: v.replica for v in victims}
    queued = sum(state[v.name][0] for v in victims)
    assert queued > 10
    ws += [b.advance(15.0) for _ in range(6)]
    for v in victims:
        q, infl, n0 = state[v.name]
        assert reps[v.name].n_success - n0 == infl
    errors = sum(w.errors for w in ws)
    assert errors == queued
    assert sum(w.offered for w in ws) == sum(w.served for w in ws) + errors


# --------------------------------------------------------------------------- HPA spike


def test_hpa_spike_scale_down_waits_300s(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """Default scenario, spike pattern (60 -> 400 users at 180-260 s), HPA v2.

    The scale-down stabilisation window (300 s) means a scale-down at t never goes
    below any recommendation made in (t - 300, t], and happens as soon as the
    window allows (default down policy: 100 % per 15 s, so no rate limit binds)."""
    sc = make_scenario(**{"traffic.pattern": {"name": "spike"}, "duration_s": 900.0})
    b = TwinBackend()
    b.reset(sc, 0)
    assert b.hpa is not None
    log: list[tuple[float, int, int | None, int]] = []
    hpa = b.hpa.hpas["cpu"]
    orig = hpa.sync

    def sync(now, current, pods):  # type: ignore[no-untyped-def]
        d = orig(now, current, pods)
        log.append((now, current, hpa.last_recommendation, d))
        return d

    hpa.sync = sync  # type: ignore[method-assign]
    ws = [b.advance(15.0) for _ in range(60)]

    recs = [(t, r) for t, _, r, _ in log if r is not None]
    ups = [(t, c, d) for t, c, _, d in log if d > c]
    downs = [(t, c, d) for t, c, _, d in log if d < c]
    assert ups and downs, "the spike must make the HPA scale up and back down"
    for t, c, d in downs:
        window = [r for ts, r in recs if t - 300.0 < ts <= t]
        assert max(window) == d, (t, c, d, window)  # no recommendation above d in 300 s
        last_higher = max(ts for ts, r in recs if r > d)
        assert t - last_higher >= 300.0
    for t, c, r, d in log:  # and it scales down as soon as the window has cleared
        if r is not None:
            window = [rr for ts, rr in recs if t - 300.0 < ts <= t]
            if max(window) < c:
                assert d == max(window, default=c), (t, c, r, d)
    # what the timeline shows: desired replicas drop >= 300 s after the last high call
    peak = max(w.cpu_desired for w in ws)
    t_peak_rec = max(t for t, r in recs if r >= peak)
    t_drop = next(w.t_end for w in ws if w.t_start > t_peak_rec and w.cpu_desired < peak)
    assert t_drop >= t_peak_rec + 300.0
    assert ws[-1].cpu_desired < peak
    assert math.isfinite(ws[-1].latency_p95_ms)

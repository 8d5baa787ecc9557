"""Faults in the twin (`twin.faults`), each pinned to its upstream timing or rule.

The scenarios are the shipped default (one RTX 3080 node with the GPU pod, two CPU nodes,
the CPU pod on ``cpu-node-0``) changed through the schema, with a deterministic start-up
(1 s container start, 1 s model load, probe every 1 s) where a timing is measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from kisim.core.config import Scenario
from kisim.core.errors import ConfigError
from kisim.core.faults import random_events
from kisim.env.episode import run_windows
from twin.backend import TwinBackend

FAST_START = {"schedule_s": 0.0, "container_start_s": 1.0, "model_load_s": 1.0,
              "model_load_cv": 0.0, "readiness_initial_delay_s": 0.0, "readiness_period_s": 1.0}


def _fast(device: str) -> dict[str, Any]:
    return {f"calibration.devices.{device}.startup.{k}": v for k, v in FAST_START.items()}


def _run(sc: Scenario, until: float, seed: int = 0) -> TwinBackend:
    b = TwinBackend()
    b.reset(sc, seed)
    b.advance(until)
    return b


def _static(make_scenario: Callable[..., Scenario], faults: dict[str, Any],
            **more: Any) -> Scenario:  # fmt: skip
    return make_scenario(**{"controller.name": "static", "faults": faults,
                            "traffic.pattern": {"name": "constant", "params": {"level": 30}},
                            **more})  # fmt: skip


def test_crash_loop_backoff_doubles_from_10s_to_300s(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """kubelet CrashLoopBackOff: the first restart is immediate, then 10 s, 20 s, 40 s, ...
    capped at 300 s (pkg/kubelet/kubelet.go backOffPeriod = 10 s, MaxContainerBackOff =
    300 s; client-go util/flowcontrol/backoff.go Next doubles the entry; Kubernetes docs,
    Pod Lifecycle, "Container restarts")."""
    sc = _static(make_scenario, {"events": [
        {"kind": "crash_loop", "pool": "gpu", "at_s": 50, "crash_after_s": 5}]},
        **_fast("rtx3080"))  # fmt: skip
    b = TwinBackend()
    b.reset(sc, 0)
    crashes: list[float] = []
    starts: list[float] = []
    b.pods.on_kill.append(lambda p: crashes.append(b.env.now) if p.pool == "gpu" else None)
    b.advance(1500)
    for p in b.pods.pods["gpu"]:
        starts.append(p.running_at)  # the last container start
    # a container runs 5 s and crashes; it started 1 s (container start) after the restart
    gaps = [round(c1 - c0 - 5.0 - 1.0, 6) for c0, c1 in zip(crashes, crashes[1:], strict=False)]
    assert crashes[0] == 50.0
    assert gaps[:8] == [0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]


def test_backoff_resets_after_10_minutes_running(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """The back-off entry expires when it was last updated more than 2 x MaxContainerBackOff
    = 600 s before the crash (flowcontrol.Backoff hasExpired): a crash 300 s after the last
    restart waits 10 s, one 700 s after it restarts at once."""
    ev = [{"kind": "crash_loop", "pool": "gpu", "at_s": t, "duration_s": 0.5, "crash_after_s": 5}
          for t in (100, 400, 1100)]  # fmt: skip
    sc = _static(make_scenario, {"events": ev}, **_fast("rtx3080"), duration_s=1500)
    b = TwinBackend()
    b.reset(sc, 0)
    ready: list[float] = []
    b.pods.on_ready.append(lambda p: ready.append(b.env.now) if p.pool == "gpu" else None)
    b.advance(1500)
    # ready = crash + back-off + container start 1 s + model load 1 s (probe every 1 s)
    delays = [round(r - c - 2.0, 6) for r, c in zip(ready[1:], (100, 400, 1100), strict=True)]
    assert delays == [0.0, 10.0, 0.0]


def test_node_loss_not_ready_after_grace_and_eviction_after_toleration(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """Node lifecycle controller: NotReady after --node-monitor-grace-period (50 s since
    Kubernetes v1.32, PR #126287; 40 s before), pods evicted after the DefaultTolerationSeconds
    300 s toleration of node.kubernetes.io/unreachable; the ReplicaSet replaces them on a
    schedulable node. Until NotReady the Service still routes to the dead pod."""
    for grace in (50.0, 40.0):
        sc = _static(make_scenario, {"node_monitor_grace_period_s": grace, "events": [
            {"kind": "node_loss", "node": "cpu-node-0", "at_s": 100}]})  # fmt: skip
        b = TwinBackend()
        b.reset(sc, 0)
        ws = [b.advance(5.0) for _ in range(10)]
        old = b.pods.pods["cpu"][0]
        assert old.binding is not None and old.binding.node.name == "cpu-node-0"
        ws += [b.advance(5.0) for _ in range(110)]
        log = {what: t for t, what, _ in b.faults.log}
        assert log["NodeNotReady"] == 100 + grace
        assert log["TaintManagerEviction"] == 100 + grace + 300
        ready = {round(w.t_end): w.pools["cpu"].ready for w in ws}
        assert ready[100] == 1 and ready[100 + grace + 5] == 0  # kube-state-metrics: not Ready
        errors = {round(w.t_end): w.errors for w in ws}
        assert sum(errors[t] for t in range(5, 101, 5)) == 0
        assert sum(errors[t] for t in range(105, 100 + int(grace) + 1, 5)) > 0  # black hole
        new = [p for p in b.pods.pods["cpu"] if p is not old]
        assert old.deleting and old.bound_at == 0.0 and len(new) == 1
        assert new[0].created == 100 + grace + 300 and new[0].binding.node.name == "cpu-node-1"
        assert ready[600] == 1


def test_gpu_loss_removes_capacity_and_crash_loops_its_pod(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """NVIDIA device plugin: an unhealthy device leaves allocatable nvidia.com/gpu; the pod
    bound to it fails at every restart until the device is healthy again."""
    sc = _static(make_scenario, {"events": [
        {"kind": "gpu_loss", "node": "gpu-node", "gpu": 0, "at_s": 100, "duration_s": 200}]},
        **_fast("rtx3080"))  # fmt: skip
    b = TwinBackend()
    b.reset(sc, 0)
    node = b.sched.node("gpu-node")
    pod = b.pods.pods["gpu"][0]
    b.advance(100.0)
    b.pods.accrue()
    assert pod.replica is not None
    b.advance(1.0)
    assert pod.replica is None and pod.restarts == 1
    node.gpu_slots_used[0] -= 1  # as if the pod's slot were free: still no GPU to offer
    assert not node.fits(0.1, 0.1, 1)
    node.gpu_slots_used[0] += 1
    b.advance(199.0)  # t = 300: healthy again
    assert pod.restarts > 2  # every restart failed meanwhile
    b.advance(400.0)
    assert pod.replica is not None  # the next restart after the back-off worked


def test_image_pull_backoff(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """kubelet image puller: ErrImagePull, then ImagePullBackOff with the same 10 s doubling
    back-off (pkg/kubelet/images/image_manager.go): pull attempts 0, 10, 30, 70, 150 s after
    the first while the registry fails."""
    sc = _static(make_scenario, {"events": [
        {"kind": "image_pull", "pool": "cpu", "at_s": 0, "duration_s": 100}]},
        **_fast("desktop-cpu"))  # fmt: skip
    b = TwinBackend()
    b.reset(sc, 0)
    b.advance(10.0)
    b.pods.scale("cpu", 2)
    name = b.pods.pods["cpu"][-1].name
    b.advance(300.0)
    fails = [t for t, what, n in b.faults.log if what == "ErrImagePull" and n == name]
    assert [round(t - fails[0], 6) for t in fails] == [0.0, 10.0, 30.0, 70.0]
    new = b.pods.pods["cpu"][-1]
    assert new.running_at == fails[0] + 150.0 + 1.0  # fifth attempt works: pull, container start


def test_slow_image_pull_adds_its_delay(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """A slow pull delays the container start by `pull_delay_s`."""
    sc = _static(make_scenario, {"events": [
        {"kind": "image_pull", "pool": "cpu", "mode": "slow", "pull_delay_s": 40, "at_s": 0}]},
        **_fast("desktop-cpu"))  # fmt: skip
    b = TwinBackend()
    b.reset(sc, 0)
    b.pods.scale("cpu", 2)
    b.advance(100.0)
    assert b.pods.pods["cpu"][-1].running_at == 41.0


def test_oom_kill_when_working_set_exceeds_the_limit(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """The memory cgroup kills a container whose working set exceeds its limit (OOMKilled);
    raising the limit (the `resources` preset's memory action) stops the kills."""
    def kills(limit: float) -> int:
        sc = make_scenario(**{
            "controller.name": "static", "faults": {"oom_kill": True},
            "traffic.pattern": {"name": "constant", "params": {"level": 200}},
            "pools.cpu.resources.memory_gib": limit, "pools.gpu.replicas": 0,
            "pools.cpu.batching.max_queue_size": 0,
            "calibration.devices.desktop-cpu.memory_per_item_gib": 0.25})  # fmt: skip
        b = _run(sc, 300.0)
        return b.faults.oom_kills

    assert kills(2.0) > 0  # 0.8 GiB model + 0.25 GiB x a few queued items > 2 GiB
    assert kills(1000.0) == 0


def test_noisy_neighbour_stretches_service_times(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """Batches started on the node while the neighbour is noisy take `slowdown` x longer."""
    sc = _static(make_scenario, {"events": [
        {"kind": "noisy_neighbour", "node": "cpu-node-0", "slowdown": 3.0, "at_s": 100,
         "duration_s": 100}]})  # fmt: skip
    b = TwinBackend()
    b.reset(sc, 0)
    b.advance(99.0)
    slot = b.pods.pods["cpu"][0].replica.slot
    before = b.dp.curve[slot].copy()
    b.advance(2.0)
    assert b.dp.curve[slot] == pytest.approx(3.0 * before)
    b.advance(100.0)
    assert b.dp.curve[slot] == pytest.approx(before)


def test_scrape_failure_marks_series_stale_and_empties_rate(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """Prometheus marks a failed target's series stale at the failed scrape: instant queries
    return nothing at once; rate() over 60 s empties once fewer than two samples are left
    (docs: Querying basics, "Staleness"; promql/functions.go extrapolatedRate)."""
    sc = _static(make_scenario, {"events": [
        {"kind": "scrape_failure", "at_s": 190, "duration_s": 200}]})  # fmt: skip
    b = _run(sc, 195.0)  # scrapes every 15 s: 180 worked, 195 fails
    name = b.pods.pods["cpu"][0].name
    assert b.obs.store.last(f"mem:{name}", 194.9) is not None
    b.advance(0.5)
    assert b.obs.store.last(f"mem:{name}", b.env.now) is None
    w = b.advance(4.5)  # t = 200: samples at 150, 165, 180 in (140, 200]
    assert not math.isnan(w.cpu_util)
    w = b.advance(35.0)  # t = 235: only 180 in (175, 235]
    assert math.isnan(w.cpu_util)
    b.advance(200.0)  # scrapes are back
    assert b.obs.store.last(f"mem:{name}", b.env.now) is not None


def test_prometheus_down_keeps_gauges_for_the_5min_lookback(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """With Prometheus itself down nothing is written (no staleness marker): a gauge answers
    from its last sample for the 5-minute lookback, then disappears."""
    sc = _static(make_scenario, {"events": [
        {"kind": "prometheus_down", "at_s": 100, "duration_s": 500}]})  # fmt: skip
    b = _run(sc, 100.0)
    name = b.pods.pods["cpu"][0].name
    last_t = max(t for t in range(0, 100, 15))
    b.advance(500.0)
    assert b.obs.store.last(f"mem:{name}", last_t + 299.0) is not None
    assert b.obs.store.last(f"mem:{name}", last_t + 300.0) is None


def test_metrics_server_gap_makes_the_hpa_hold(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """With no pod metrics the HPA cannot compute a ratio (FailedGetResourceMetric) and keeps
    its replica count (kisim.core.hpa: ReplicaComputeError -> hold)."""
    def cpu_desired(faults: dict[str, Any]) -> list[int]:
        sc = make_scenario(**{"faults": faults, "pools.gpu.replicas": 0,
                              "traffic.pattern": {"name": "ramp", "params": {}}})  # fmt: skip
        b = TwinBackend()
        ep = run_windows(b, sc, 0)
        return [w.pools["cpu"].desired for w in ep.windows]

    free = cpu_desired({})
    gap = cpu_desired({"events": [{"kind": "metrics_server_gap", "at_s": 0}]})
    assert max(free) > free[0]  # the ramp makes the HPA scale up ...
    assert set(gap) == {gap[0]}  # ... but not without metrics


def test_fault_runs_are_deterministic(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """Scenario + seed -> identical numbers, faults included (random ones too)."""
    sc = make_scenario(faults={"random": {"per_hour": 30}})
    assert random_events(sc, 3) == random_events(sc, 3) != random_events(sc, 4)
    a, c = (run_windows(TwinBackend(), sc, 3).summary for _ in range(2))
    assert a == c


def test_empty_faults_section_changes_nothing(make_scenario, default_scenario) -> None:  # type: ignore[no-untyped-def]
    """`faults: {}` is the fault-free run, and leaves no trace in the resolved config."""
    from kisim.core.config import resolved_json

    sc = make_scenario(faults={})
    assert resolved_json(sc) == resolved_json(default_scenario)
    ref = run_windows(TwinBackend(), default_scenario, 0).summary
    assert run_windows(TwinBackend(), sc, 0).summary == ref


def test_bad_fault_spec_names_the_field(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A wrong key, kind, pool or node is one line naming the file and the field."""
    from kisim.core.config import load_scenario
    from tests.twin.conftest import DEFAULT_SCENARIO

    cases = {
        "{kind: crash_loop, pool: gpu, at_s: 1, podz: 2}": "faults.events.0.crash_loop.podz",
        "{kind: crash, pool: gpu, at_s: 1}": "faults.events.0",
        "{kind: crash_loop, pool: tpu, at_s: 1}": "faults.events.0.pool",
        "{kind: node_loss, node: nowhere, at_s: 1}": "faults.events.0.node",
        "{kind: gpu_loss, node: cpu-node-0, at_s: 1}": "faults.events.0.gpu",
    }
    for spec, field in cases.items():
        f = tmp_path / "s.yaml"
        f.write_text(f"extends: {DEFAULT_SCENARIO}\nname: s\nfaults:\n  events:\n    - {spec}\n")
        with pytest.raises(ConfigError) as e:
            load_scenario(f)
        assert str(f) in str(e.value) and field in str(e.value) and "\n" not in str(e.value)




def test_a_crash_during_back_off_keeps_the_pod(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """A fault that hits a pod whose container is already down (waiting out its back-off)
    changes nothing: the pod stays, and restarts when the back-off ends (a pod is only
    deleted by its controller or an eviction)."""
    sc = _static(make_scenario, {"events": [
        {"kind": "crash_loop", "pool": "gpu", "at_s": 50, "duration_s": 40, "crash_after_s": 5},
        {"kind": "gpu_loss", "node": "gpu-node", "gpu": 0, "at_s": 75, "duration_s": 10}]},
        **_fast("rtx3080"))  # fmt: skip
    b = TwinBackend()
    b.reset(sc, 0)
    pod = b.pods.pods["gpu"][0]
    b.advance(76.0)  # crashes at 50, 56, 72 (restarts after 0, 10, 20 s): in back-off at 75
    assert pod in b.pods.pods["gpu"] and pod.restarts == 3
    b.advance(600.0)
    assert b.pods.pods["gpu"] == [pod] and pod.replica is not None


def test_a_node_back_before_not_ready_reboots_its_pods(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """A node that returns within the grace period was never NotReady: its pods restart
    (the machine rebooted), serve again, and nothing is evicted."""
    sc = _static(make_scenario, {"events": [
        {"kind": "node_loss", "node": "cpu-node-0", "at_s": 100, "duration_s": 30}]},
        **_fast("desktop-cpu"))  # fmt: skip
    b = TwinBackend()
    b.reset(sc, 0)
    ws = [b.advance(10.0) for _ in range(30)]
    pod = b.pods.pods["cpu"][0]
    assert pod.restarts == 1 and pod.replica is not None and not pod.deleting
    assert [w.errors for w in ws if w.t_start >= 140] == [0] * 16
    assert not any(what == "NodeNotReady" for _, what, _ in b.faults.log)


def test_overlapping_losses_of_one_node_or_gpu(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """Random faults can overlap on one target: the outage lasts until the last one ends,
    and the node controller's timers run from the first."""
    sc = _static(make_scenario, {"events": [
        {"kind": "node_loss", "node": "cpu-node-0", "at_s": 100, "duration_s": 100},
        {"kind": "node_loss", "node": "cpu-node-0", "at_s": 150, "duration_s": 200},
        {"kind": "gpu_loss", "node": "gpu-node", "gpu": 0, "at_s": 100, "duration_s": 100},
        {"kind": "gpu_loss", "node": "gpu-node", "gpu": 0, "at_s": 120,
         "duration_s": 20}]})  # fmt: skip
    b = _run(sc, 190.0)
    assert "cpu-node-0" in b.faults.down and b.faults.lost_gpus  # the second GPU loss ended
    b.advance(20.0)  # t = 210
    assert "cpu-node-0" in b.faults.down and not b.faults.lost_gpus
    b.advance(300.0)  # t = 510
    log = [(t, what) for t, what, _ in b.faults.log
           if what in ("NodeNotReady", "TaintManagerEviction")]  # fmt: skip
    assert log == [(150.0, "NodeNotReady")]  # back at 350, before the eviction at 450
    assert "cpu-node-0" not in b.faults.down and b.sched.node("cpu-node-0").schedulable


def test_a_crash_looping_pod_scaled_down_goes(make_scenario) -> None:  # type: ignore[no-untyped-def]
    """A crash-looping pod deleted while Ready drains and frees its node as any other (its
    scheduled crash does not resurrect it)."""
    sc = _static(make_scenario, {"events": [
        {"kind": "crash_loop", "pool": "cpu", "at_s": 50, "crash_after_s": 30}]},
        **_fast("desktop-cpu"))  # fmt: skip
    b = TwinBackend()
    b.reset(sc, 0)
    b.advance(55.0)  # crashed at 50, restarted at once, Ready at 52, next crash due at 81
    pod = b.pods.pods["cpu"][0]
    assert pod.replica is not None
    b.pods.scale("cpu", 0)
    b.advance(100.0)
    assert b.pods.pods["cpu"] == [] and pod.binding is None
    assert sum(n.cpu_used for n in b.sched.nodes if n.name.startswith("cpu")) == 0.0

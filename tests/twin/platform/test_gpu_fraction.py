"""A model's GPU fraction changed while it serves (twin.platform.serving.set_gpu_request): a
rolling update that never drops ready capacity, and a whole time-sliced GPU that no
neighbour slows."""

from __future__ import annotations

from typing import Any

import pytest
import simpy

from tests.twin.platform.test_world import gpu_platform, scenario, world
from twin.platform.world import PlatformWorld

TS = {"mode": "time-slicing", "replicas": 2}


def _two_nodes(model: dict[str, Any]) -> dict[str, Any]:
    p = gpu_platform(TS, model={"replicas": 1, "min_replicas": 1, "max_replicas": 2, **model},
                     step={"duration_s": 1e6})  # fmt: skip
    p["node_pools"]["g"].update(nodes=2, min_nodes=2, max_nodes=2)
    return p


def _watch(env: simpy.Environment, w: PlatformWorld, seen: list[tuple[float, int, int]]) -> Any:
    svc = w.models["m"]
    while True:
        seen.append((env.now, len(svc.ready), sum(p.gpu == 2 for p in svc.ready)))
        yield env.timeout(0.5)


def test_a_changed_gpu_request_rolls_out_without_losing_ready_capacity() -> None:
    """Kubernetes docs, "Deployments" (Rolling Update Deployment): with maxUnavailable 0 the
    old pod is deleted only once a pod of the new template is Ready. The template's request
    goes from one time-sliced slot to the whole GPU (both slots) at t = 100 s: a new pod binds
    on the free node, and until it is Ready the old one keeps serving; afterwards the only
    live pod holds both slots of its GPU."""
    env, w = world(scenario(_two_nodes({"rate_rps": 5.0})))
    seen: list[tuple[float, int, int]] = []
    env.process(_watch(env, w, seen))
    env.run(until=100)
    svc = w.models["m"]
    assert [p.gpu for p in svc.ready] == [1]
    assert w.control(gpu={"m": 2}) == {"gpu_m": 2}
    env.run(until=300)
    after = [s for s in seen if s[0] >= 100]
    assert min(r for _, r, _ in after) >= 1  # never without a ready replica
    swapped = next(t for t, _, whole in after if whole == 1)
    assert 100 < swapped < 200  # the new pod's start-up (container + model load + probe)
    live = [p for p in svc.pods if p.state in ("pending", "running")]
    assert [p.gpu for p in live] == [2] and len(live[0].slots) == 2
    assert w.state()["model_m_gpu"] == 2.0


def test_a_whole_time_sliced_gpu_keeps_its_neighbours_off() -> None:
    """NVIDIA k8s-device-plugin, time-slicing: a GPU advertised as 2 slots is shared by
    whoever holds them, each busy process slowed equally. A pod holding both slots leaves
    none for a batch step, which waits, and the model runs at its solo speed (the shared-slot
    case beside a busy step runs 2x slower: test_world's time-slicing test)."""
    p = gpu_platform(TS, model={"replicas": 1, "rate_rps": 1.0, "gpu": 2},
                     step={"duration_s": 1e6})  # fmt: skip
    env, w = world(scenario(p))
    run = w.batch.submit("t", "w")
    env.run(until=2000)
    svc = w.models["m"]
    assert run.ended_at is None and w.cluster.pending  # the step never found a slot
    solo = svc.dev.service.time_ms(1)
    mean = sum(svc.latencies) / len(svc.latencies) * 1e3 - svc.dev.overhead_ms
    assert mean == pytest.approx(solo, rel=0.06)  # the same tolerance as test_world's


def test_gpu_control_refuses_a_cpu_model() -> None:
    env, w = world(scenario(_two_nodes({"gpu": 0, "node_pool": "g"})))
    with pytest.raises(ValueError, match="model 'm' takes no GPU"):
        w.control(gpu={"m": 2})

"""`hpa` on the local stack: no HPA object exists locally, so kisim runs the controller's
algorithm from outside (`agents.policies.hpa.ExternalHPA`) on the replicas' real CPU use
read from Prometheus. 12 users keep one 2-core replica well above a 10 % target, so the
first sync (4 s) must ask for the maximum, 2, and the new replica must start for real."""

from __future__ import annotations

import pytest
from local_stack import needs_stack, small_scenario

pytestmark = [pytest.mark.server, needs_stack]


def test_hpa_scales_real_replicas_from_outside(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from agents.evaluation.policy_run import run_policy
    from bridge.backend import make_local_backend

    sc = small_scenario(**{"pools.gpu.replicas": 0, "pools.gpu.max_replicas": 0,
                           "controller.hpa.sync_period_s": 4,
                           "metrics.metrics_server_resolution_s": 4})  # fmt: skip
    b = make_local_backend(tmp_path)
    events: list[object] = []
    run = run_policy("hpa:0.1", sc, 0, backend=b, on_end=lambda be: events.extend(
        be.actuator.events()))  # type: ignore[attr-defined]  # fmt: skip
    assert run.scenario.controller.name == "external"  # kisim acts, nothing in-cluster
    w = run.episode.windows
    assert w[0].cpu_desired == 2 and all(x.cpu_desired == 2 for x in w)  # first sync at 4 s
    created = [e for e in events if e.kind == "created" and e.pool == "cpu"]  # type: ignore[attr-defined]
    ready = [e for e in events if e.kind == "ready" and e.pool == "cpu"]  # type: ignore[attr-defined]
    assert len(created) == 2 and len(ready) == 2
    assert w[-1].cpu_ready == 2 and run.episode.summary["errors"] == 0

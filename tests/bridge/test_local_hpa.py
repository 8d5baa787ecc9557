"""`hpa` on the local stack: no HPA object exists locally, so kisim runs the controller's
algorithm from outside (`agents.policies.hpa.ExternalHPA`) on the replicas' real CPU use
read from Prometheus. 12 users keep one 2-core replica well above a 10 % target, so a
sync must ask for the maximum, 2, and the new replica must start for real.

The first sync (4 s) may find no CPU rate yet on a loaded machine (Prometheus needs two
scrapes of a started replica inside the 4 s resolution); the controller then holds, as the
real HPA does on a metrics error. The sync at 8 s has at least eight scrapes, so from the
second window on the desired count must be 2 — and never fall back."""

from __future__ import annotations

import pytest
from local_stack import needs_stack, small_scenario

pytestmark = [pytest.mark.server, needs_stack]


def test_hpa_scales_real_replicas_from_outside(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from agents.evaluation.policy_run import run_policy
    from bridge.backend import make_local_backend

    sc = small_scenario(**{"pools.gpu.replicas": 0, "pools.gpu.max_replicas": 0,
                           "controller.hpa.sync_period_s": 4,
                           "metrics.metrics_server_resolution_s": 4, "duration_s": 32})  # fmt: skip
    b = make_local_backend(tmp_path)
    events: list[object] = []
    run = run_policy("hpa:0.1", sc, 0, backend=b, on_end=lambda be: events.extend(
        be.actuator.events()))  # type: ignore[attr-defined]  # fmt: skip
    assert run.scenario.controller.name == "external"  # kisim acts, nothing in-cluster
    w = run.episode.windows
    desired = [x.cpu_desired for x in w]
    assert desired[0] in (1, 2) and all(d == 2 for d in desired[1:]), desired
    created = [e for e in events if e.kind == "created" and e.pool == "cpu"]  # type: ignore[attr-defined]
    ready = [e for e in events if e.kind == "ready" and e.pool == "cpu"]  # type: ignore[attr-defined]
    assert len(created) == 2 and len(ready) == 2
    assert w[-1].cpu_ready == 2 and run.episode.summary["errors"] == 0

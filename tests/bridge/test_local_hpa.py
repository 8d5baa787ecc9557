"""`hpa` on the local stack: no HPA object exists locally, so kisim runs the controller's
algorithm from outside (`agents.policies.hpa.ExternalHPA`) on the replicas' real CPU use
read from Prometheus. 12 users keep one 2-core replica at ~12 % CPU (0.23-0.25 cores
measured on a quiet host), more than twice a 5 % target (a 10 % target sat within the
controller's 10 % tolerance of it), so a sync must ask for the maximum, 2, and the new
replica must start for real; two replicas at ~6 % each stay above the target, so it holds.

A sync holds when Prometheus has no CPU rate for the replica yet (the controller treats a
metrics error so, as the real HPA does): on a loaded machine the proc exporter's scrapes can
miss for a few seconds, so the first syncs (4 s, 8 s) may hold. Within the first 24 s (at least five
syncs, 24 one-second scrapes) the desired count must reach 2, never fall back, and the new
replica must be ready before the end (40 s)."""

from __future__ import annotations

import pytest
from local_stack import needs_stack, small_scenario

pytestmark = [pytest.mark.server, needs_stack]


def test_hpa_scales_real_replicas_from_outside(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from agents.evaluation.policy_run import run_policy
    from bridge.backend import make_local_backend

    sc = small_scenario(**{"pools.gpu.replicas": 0, "pools.gpu.max_replicas": 0,
                           "controller.hpa.sync_period_s": 4,
                           "metrics.metrics_server_resolution_s": 4, "duration_s": 40})  # fmt: skip
    b = make_local_backend(tmp_path)
    events: list[object] = []
    run = run_policy("hpa:0.05", sc, 0, backend=b, on_end=lambda be: events.extend(
        be.actuator.events()))  # type: ignore[attr-defined]  # fmt: skip
    assert run.scenario.controller.name == "external"  # kisim acts, nothing in-cluster
    w = run.episode.windows
    desired = [x.cpu_desired for x in w]
    assert set(desired) <= {1, 2} and desired == sorted(desired), desired  # never falls back
    assert desired[2] == 2, desired  # the windows end at 8, 16 and 24 s
    created = [e for e in events if e.kind == "created" and e.pool == "cpu"]  # type: ignore[attr-defined]
    ready = [e for e in events if e.kind == "ready" and e.pool == "cpu"]  # type: ignore[attr-defined]
    assert len(created) == 2 and len(ready) == 2
    assert w[-1].cpu_ready == 2 and run.episode.summary["errors"] == 0

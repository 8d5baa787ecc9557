"""`kisim eval --real` on the local stack: the harness, a real backend per run, raw traces.

Two policies on one seed: `static` (in-cluster, watches) and `threshold` (env-driven, acts
through the replicas preset). Checks that every run directory is complete, that its
Windows' served count is exactly what its own raw `requests.csv` shows completing inside
the episode (the same records, so equality, not a tolerance), that the lifecycle events
and Prometheus series were kept, and that no server process is left.
"""

from __future__ import annotations

import csv
import json
import time

import psutil
import pytest
from local_stack import USERS, needs_stack, small_scenario

from kisim.core.config import resolved_json

pytestmark = [pytest.mark.server, needs_stack]


def test_real_eval_writes_runs_and_raw_traces(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from agents.evaluation.harness import evaluate
    from agents.evaluation.real_episode import RealEpisode
    from kisim.core.rundir import read_summary, read_timeline

    sc = small_scenario(**{"duration_s": 16, "pools.gpu.replicas": 0,
                           "traffic.pattern_params": {"constant": {"level": USERS}}})
    ep = RealEpisode(json.loads(resolved_json(sc)), "local")
    res = evaluate(["static", "threshold"], ["constant"], [0], tmp_path / "out", ep,
                   reference="static", progress=False, figures=False)  # fmt: skip
    assert res.ok and res.ran == 2
    assert (tmp_path / "out" / "summary.csv").is_file()
    for policy in ("static", "threshold"):
        d = tmp_path / "out" / "runs" / policy / "constant" / "seed-0"
        s = read_summary(d)
        assert s["backend"] == "local" and s["served"] > 0
        t0, t1 = s["t0_unix_s"], s["t_end_unix_s"]
        assert t1 - t0 == pytest.approx(16.0)
        rows = list(csv.DictReader((d / "trace" / "requests.csv").open()))
        assert len(rows) == s["trace_requests"] >= s["served"]
        assert 0 <= s["offered"] - s["served"] <= USERS  # closed loop: the rest in flight
        done = [float(r["start_unix_s"]) + float(r["latency_ms"]) / 1000.0 for r in rows
                if r["ok"] == "1"]  # fmt: skip
        assert sum(t0 <= t < t1 for t in done) == s["served"]
        assert sum(read_timeline(d)["served"]) == s["served"]
        events = list(csv.DictReader((d / "trace" / "events.csv").open()))
        assert {e["event"] for e in events} >= {"created", "ready", "terminated"}
        index = json.loads((d / "trace" / "prometheus" / "index.json").read_text())
        assert "nv_inference_request_success.json" in index and s["trace_series"] == len(index)
        assert not (d / ".work").exists()
    time.sleep(0.5)  # Triton, Prometheus and Locust were this process's children
    assert [c.name() for c in psutil.Process().children(recursive=True)] == []

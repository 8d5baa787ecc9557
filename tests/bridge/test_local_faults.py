"""Real faults in a real local episode: a Triton replica killed, Prometheus stopped.

One `kisim eval --real` run (the harness and `RealEpisode`, as the CLI calls them) is
first killed with SIGKILL while its episode runs: nothing it started may survive. The
rerun with the same OUT resumes it (the run has no summary.json) with the fault schedule
``kill:cpu-0@3s,prometheus-restart@5s+5s`` on one CPU replica, and must: return a Window
(the env's observation) for every step although Prometheus is down for one of them; account
for every request sent (served + errors + in flight at the end = sent, and the errors are
there: the only replica died); list the faults in events.csv with time, kind and target;
and leave no process or port behind.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from local_stack import USERS, needs_stack, port_open, small_scenario

from bridge.procs import wait_until
from kisim.core.config import resolved_json
from kisim.core.window import Window
from kisim.env.context import EnvState, build_context
from kisim.env.observation import OBSERVATIONS

pytestmark = [pytest.mark.server, needs_stack]
HERE = Path(__file__).resolve().parent
FAULTS = "kill:cpu-0@3s,prometheus-restart@5s+5s"
OVERRIDES: dict[str, Any] = {"duration_s": 12, "window_s": 4, "metrics.rate_window_s": 4,
                             "pools.gpu.replicas": 0,
                             "env.observation": "default-stale"}  # fmt: skip

CHILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, {here!r})
from local_stack import small_scenario
from agents.evaluation.harness import evaluate
from agents.evaluation.real_episode import RealEpisode
from kisim.core.config import resolved_json
from kisim.core.window import Window
from kisim.env.context import EnvState, build_context
from kisim.env.observation import OBSERVATIONS
sc = small_scenario(**{overrides!r})
ep = RealEpisode(json.loads(resolved_json(sc)), "local", faults={faults!r})
evaluate(["static"], ["constant"], [0], Path({out!r}), ep, reference="static",
         progress=False, figures=False)
"""


def _addresses(events: list[dict[str, str]]) -> list[str]:
    """host:port of every replica that ever ran (its 'created' detail names them)."""
    out = []
    for e in events:
        if e["event"] == "created":
            out += [kv.split("=", 1)[1] for kv in e["detail"].split() if kv[:4] in ("http", "metr")]
    return out


def _kill_mid_episode(out: Path) -> None:
    """Start the evaluation in a child, SIGKILL it once its load runs; all must go."""
    code = CHILD.format(here=str(HERE), overrides=OVERRIDES, faults=FAULTS, out=str(out))
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    run = out / "runs" / "static" / "constant" / "seed-0"
    try:
        started = wait_until(lambda: any(run.glob(".work/run/load-*/events.csv"))
                             or child.poll() is not None, 180, 0.2)  # fmt: skip
        assert started and child.poll() is None, "the child never started its episode"
        kids = psutil.Process(child.pid).children(recursive=True)
        ports = [c.laddr.port for k in kids for c in _listening(k)]
        assert ports, "no server of the child was listening"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    def gone() -> bool:
        return not [k for k in kids if _alive(k)] and not [
            p for p in ports if port_open(f"127.0.0.1:{p}")
        ]

    assert wait_until(gone, 60, 0.5), (
        f"left after the owner was killed: {[k.pid for k in kids if _alive(k)]}, {ports}"
    )
    assert not (run / "summary.json").exists()


def _listening(p: psutil.Process) -> list[Any]:
    try:
        return [c for c in p.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        return []


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_killed_replica_and_stopped_prometheus_mid_episode(tmp_path: Path) -> None:
    from agents.evaluation.harness import evaluate
    from agents.evaluation.real_episode import RealEpisode
    from kisim.core.rundir import read_summary, read_timeline

    out = tmp_path / "out"
    _kill_mid_episode(out)

    sc = small_scenario(**OVERRIDES)
    ep = RealEpisode(json.loads(resolved_json(sc)), "local", faults=FAULTS)
    res = evaluate(["static"], ["constant"], [0], out, ep, reference="static", progress=False,
                   figures=False)  # fmt: skip
    assert res.ok and res.ran == 1 and res.skipped == 0  # the killed run ran again
    d = out / "runs" / "static" / "constant" / "seed-0"
    s = read_summary(d)
    tl = read_timeline(d)

    # the env returned a Window for every step, one of them without Prometheus
    assert len(tl["t_end"]) == 3
    assert s["metrics_missing_windows"] >= 1
    assert any(math.isnan(u) for u in tl["cpu_util"])
    # what the stale preset makes of these Windows: finite, and stale where pods were Ready
    # but Prometheus gave nothing (down, or restarted and not yet scraped twice)
    ctx = build_context(sc)
    preset, st = OBSERVATIONS["default-stale"](ctx), EnvState.initial(ctx)
    for row in read_timeline(d, as_arrays=False):
        w = Window.from_dict(row)
        o = preset.observe(w, st)
        assert np.isfinite(o).all()
        gone = math.isnan(w.cpu_util) or math.isnan(w.mem_util)
        assert (o[-1] > 0) == (gone and w.ready_total > 0)

    # every request sent is served, failed or still in flight at the end (closed loop:
    # at most one per user); the only CPU replica died, so some failed
    served, errors = int(sum(tl["served"])), int(sum(tl["errors"]))
    assert int(sum(tl["offered"])) == s["sent"] == served + errors + s["in_flight_end"]
    assert 0 <= s["in_flight_end"] <= USERS
    assert errors > 0
    t0, t1 = s["t0_unix_s"], s["t_end_unix_s"]
    rows = list(csv.DictReader((d / "trace" / "requests.csv").open()))
    done = [float(r["start_unix_s"]) + float(r["latency_ms"]) / 1000.0 for r in rows]
    assert sum(t0 <= t < t1 for t in done) == served + errors

    # the faults with time, kind and target; the crash, the replacement, the restart
    events = list(csv.DictReader((d / "trace" / "events.csv").open()))
    faults = [(e["replica"], e["detail"].split()[0]) for e in events if e["event"] == "fault"]
    assert faults == [("cpu-0", "kill"), ("prometheus", "prometheus-restart")]
    at = [float(e["t_unix_s"]) - t0 for e in events if e["event"] == "fault"]
    assert at[0] >= 3.0 and at[1] >= 5.0 and at == sorted(at)  # never before they are due
    assert any(e["event"] == "restored" and e["replica"] == "prometheus" for e in events)
    assert any(e["event"] == "failed" and e["detail"].startswith("crashed") for e in events)
    assert ("cpu-1", "created") in {(e["replica"], e["event"]) for e in events}
    ready = [
        float(e["t_unix_s"]) for e in events if e["replica"] == "cpu-1" and e["event"] == "ready"
    ]
    if ready and ready[0] < t1 - 4:  # the replacement was ready for a whole window: it served
        assert tl["served"][-1] > 0  # (a loaded machine may start it later: no race here)

    # nothing left: no child process, no replica port
    wait_until(lambda: not psutil.Process().children(recursive=True), 10, 0.2)
    assert [c.name() for c in psutil.Process().children(recursive=True)] == []
    assert not [a for a in _addresses(events) if port_open(a)]
    assert not (d / ".work").exists() and not (d / "error.txt").exists()
    assert os.listdir(d / "trace")  # the raw trace survived

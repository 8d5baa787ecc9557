"""`kisim sim2real` end to end on the real local stack, at the tiniest size: one workload, two
policies, one seed, 16-s runs. The command is killed (SIGKILL) during its second real run;
nothing it started survives, and a rerun skips the finished real run, redoes the killed one and
writes the report; no process or port is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from local_stack import needs_stack

pytestmark = [pytest.mark.server, needs_stack]
ROOT = Path(__file__).resolve().parents[2]

SCENARIO = """apiVersion: kisim/v1
kind: Scenario
extends: {base}
name: sim2real-test
duration_s: 16
window_s: 4
traffic:
  pattern_params:
    spike: {{base: 8, peak: 30, start_s: 4, rise_s: 2, hold_s: 6, fall_s: 2}}
env: {{step_s: 4}}
metrics: {{scrape_interval_s: 1, rate_window_s: 4, metrics_server_resolution_s: 4}}
"""
CONFIG = """apiVersion: kisim/v1
kind: Sim2RealConfig
name: tiny
scenario: scenario.yaml
policies: ["static-cpu:1", hpa]
workloads: [spike]
seeds: 1
"""


def _kisim(*args: str) -> subprocess.Popen[str]:
    code = "import sys; from kisim.cli import main; sys.argv[0] = 'kisim'; main()"
    return subprocess.Popen([sys.executable, "-c", code, "sim2real", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def _left(marker: str) -> list[str]:
    """Processes whose command line names `marker` (the test's folder): servers of a run."""
    me = os.getpid()
    out = []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if p.pid != me and marker in cmd and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {cmd[:120]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def _alive(pids: set[int]) -> list[int]:
    """The pids still running (a zombie waiting for its reaper is dead)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            continue
    return out


def _listening(pids: set[int]) -> list[str]:
    return [f"{c.laddr}" for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.pid in pids]  # fmt: skip


def test_sim2real_local_kill_resume_and_cleanup(tmp_path: Path) -> None:
    (tmp_path / "scenario.yaml").write_text(SCENARIO.format(
        base=ROOT / "configs" / "sim2real" / "local-scenario.yaml"))
    (tmp_path / "tiny.yaml").write_text(CONFIG)
    out = tmp_path / "out"
    args = ("--config", str(tmp_path / "tiny.yaml"), "--out", str(out))
    first = out / "real" / "runs" / "static-cpu_1-b8a04bae" / "spike" / "seed-0"
    second = out / "real" / "runs" / "hpa" / "spike" / "seed-0"

    proc = _kisim(*args)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not (first / "summary.json").is_file() or not (second / ".work").is_dir():
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the first real run did not finish in 120 s"
            time.sleep(0.2)
        time.sleep(3)  # the second run's servers are up
    finally:
        if proc.poll() is None:
            seen = {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        os.killpg(proc.pid, signal.SIGKILL)  # no clean-up code runs
        proc.communicate()
    assert seen, "no servers under kisim during a real run"
    deadline = time.monotonic() + 30
    while (_alive(seen) or _listening(seen)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _alive(seen) == [] and _listening(seen) == [] and _left(str(tmp_path)) == []
    assert not (second / "summary.json").exists()

    again = _kisim(*args)
    stdout, stderr = again.communicate(timeout=180)
    assert again.returncode == 0, stderr[-2000:]
    assert "twin: ran 0, skipped 2" in stdout  # the twin's runs finished before the kill
    assert "real: ran 1, skipped 1" in stdout  # the killed run redone, the finished one kept
    for f in ("report.md", "side_by_side.csv", "kendall.csv", "verdicts.csv", "beats.csv",
              "sim2real-report.json", "figures/twin-vs-real.png", "figures/twin-vs-real.pdf"):
        assert (out / f).is_file(), f
    rep = json.loads((out / "sim2real-report.json").read_text())
    assert rep["runs"] == {"twin": "2 of 2", "real": "2 of 2"}
    real = [r for r in rep["side_by_side"] if r["metric"] == "throughput_rps"]
    assert all(r["real_n"] == 1 and r["real_mean"] > 0 for r in real)
    assert (second / "trace" / "requests.csv").is_file() and not (second / ".work").exists()
    doc = json.loads((out / "sim2real.json").read_text())
    assert len(doc["invocations"]) == 2 and doc["backend"] == "local"
    time.sleep(0.5)
    assert _left(str(tmp_path)) == []

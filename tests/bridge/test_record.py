"""`kisim record` on the local real stack: a ~20 s recording writes every file of the bundle
format (docs/bundle-format.md), and the files agree with each other.

Exact checks, and why they can be exact: no other traffic reaches the replica, every request
sent completes before the bundle's end, and the Prometheus series run from a sample taken
before the first request to one taken after the last completion — so the successful rows of
requests.csv, Locust's own request count and the growth of Triton's success counter are the
same number.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml
from local_stack import needs_stack, port_open

from kisim.core.errors import ConfigError, KisimError
from kisim.core.trace_bundle import TRITON_SERIES

pytestmark = [pytest.mark.server, needs_stack]

SCHEDULE = """
apiVersion: kisim/v1
kind: RecordSchedule
name: test-record
duration_s: 16
scrape_interval_s: 1
traffic:
  wait_time_s: [0.1, 0.3]
  schedule:
    - {t_s: 0, users: 2}
    - {t_s: 6, users: 8}
pools:
  cpu:
    replicas: 1
    batching: {enabled: true, max_batch_size: 4, max_queue_delay_us: 2000}
service_times: {batch_sizes: [1, 2, 4, 8], repeats: 3, warmup: 1}
"""
REQUIRED = (
    "manifest.yaml",
    "requests.csv",
    "locust_stats.csv",
    "locust_stats_history.csv",
    "locust_failures.csv",
    "events.csv",
    "service_times.csv",
    "prometheus/index.json",
)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _increase_from(result: list[dict], t0: float) -> float:
    """Sum over series of last value - the last value at or before t0."""
    total = 0.0
    for r in result:
        vals = [(float(t), float(v)) for t, v in r["values"]]
        before = [v for t, v in vals if t <= t0]
        assert before, f"{r['metric']}: no sample before the start"
        total += vals[-1][1] - before[-1]
    return total


def test_record_writes_a_consistent_bundle(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bridge.record import Recorder, split_manifest

    sched = tmp_path / "s.yaml"
    sched.write_text(SCHEDULE)
    out = tmp_path / "bundles" / "b"
    summary = Recorder(sched, out).run()
    assert out.is_dir() and summary.out == out
    assert [p.name for p in out.parent.iterdir()] == ["b"]  # no temporary folder left
    for f in REQUIRED:
        assert (out / f).is_file(), f

    m = yaml.safe_load((out / "manifest.yaml").read_text())
    t0, t1 = m["start_unix_s"], m["end_unix_s"]
    assert (m["apiVersion"], m["kind"], m["name"], m["backend"]) == (
        "kisim/v1", "TraceBundle", "b", "local")  # named after its folder  # fmt: skip
    assert 16.0 <= t1 - t0 < 30.0
    assert m["triton"]["version"].startswith("2.")
    assert m["hardware"]["cpu_model"] and m["hardware"]["gpu_model"] is None
    assert split_manifest(m) == (m, {})  # exactly the format's keys; additions elsewhere
    rec = yaml.safe_load((out / "recording.yaml").read_text())
    assert (rec["kind"], rec["name"], rec["schedule"]) == ("TraceRecording", "b", "test-record")
    cpu = m["pools"]["cpu"]
    assert (cpu["device"], cpu["replicas"], cpu["instances"]) == ("cpu", 1, 1)
    assert cpu["batching"]["max_batch_size"] == 4 and cpu["batching"]["max_queue_delay_us"] == 2000
    assert rec["pools"]["cpu"]["served"]["max_batch_size"] == 4
    tr = m["traffic"]
    assert tr["mode"] == "closed" and tr["wait_time_s"] == [0.1, 0.3]
    assert tr["schedule"] == [{"t_s": 0.0, "users": 2}, {"t_s": 6.0, "users": 8},
                              {"t_s": 16.0, "users": 0}]  # fmt: skip
    applied = rec["traffic"]["applied"]
    assert [a["users"] for a in applied] == [2, 8, 0]
    for a, s in zip(applied, tr["schedule"], strict=True):
        assert 0 <= a["t_s"] - s["t_s"] < 1.0

    # requests.csv: every request inside [start, end], start and completion
    req = _rows(out / "requests.csv")
    assert list(req[0]) == ["start_unix_s", "latency_ms", "ok", "pool", "replica"]
    starts = [float(r["start_unix_s"]) for r in req]
    assert starts == sorted(starts)
    for r in req:
        s, lat = float(r["start_unix_s"]), float(r["latency_ms"])
        assert t0 - 1e-6 <= s and s + lat / 1000.0 <= t1 + 1e-6
        assert (r["ok"], r["pool"], r["replica"]) == ("1", "cpu", "cpu-0")
    n = len(req)
    assert n > 50

    # Locust's own count (stats.csv, Aggregated) and its full history
    agg = [r for r in _rows(out / "locust_stats.csv") if r["Name"] == "Aggregated"][0]
    assert int(agg["Request Count"]) == n and int(agg["Failure Count"]) == 0
    hist = _rows(out / "locust_stats_history.csv")
    assert {r["Name"] for r in hist} == {"cpu", "Aggregated"}  # full history: per name rows
    assert int(hist[-1]["Total Request Count"]) == n
    assert all(t0 - 1 <= int(r["Timestamp"]) <= t1 + 3 for r in hist)

    # Prometheus: every Triton series, raw, with a sample before the first request
    idx = json.loads((out / "prometheus" / "index.json").read_text())
    prom = {}
    for name in TRITON_SERIES:
        meta = idx[f"{name}.json"]
        assert meta["step"] == "1s" and meta["start"] < t0 and meta["end"] > t1
        data = json.loads((out / "prometheus" / f"{name}.json").read_text())
        assert data["status"] == "success" and data["data"]["resultType"] == "matrix"
        assert meta["query"].startswith(name + "{")
        prom[name] = data["data"]["result"]
    success = _increase_from(prom["nv_inference_request_success"], t0)
    items = _increase_from(prom["nv_inference_count"], t0)
    batches = _increase_from(prom["nv_inference_exec_count"], t0)
    assert success == n == items  # one item per request
    assert 1 <= items / batches <= 4

    # events: the replica was ready before the start and stopped after the end
    ev = _rows(out / "events.csv")
    kinds = [(e["replica"], e["event"]) for e in ev]
    assert kinds == [("cpu-0", k) for k in ("created", "started", "ready", "stopping", "stopped")]
    t_ev = {e["event"]: float(e["t_unix_s"]) for e in ev}
    assert t_ev["created"] <= t_ev["ready"] < t0 and t1 < t_ev["stopping"] <= t_ev["stopped"]

    # service times: sizes up to the served max batch, `repeats` each, positive times
    st = _rows(out / "service_times.csv")
    assert list(st[0])[:4] == ["device", "batch_size", "repeat", "ms"]
    assert sorted({int(r["batch_size"]) for r in st}) == [1, 2, 4]
    assert len(st) == 3 * 3
    for r in st:
        assert r["device"] == "cpu" and 0 < float(r["ms"]) <= float(r["request_ms"])
        assert float(r["request_ms"]) <= float(r["client_ms"])

    host = _rows(out / "host.csv")
    assert host and all(math.isfinite(float(h["host_busy_cores"])) for h in host)

    # every process is gone: Prometheus no longer answers on its port
    assert rec["summary"]["requests"] == n and rec["summary"]["triton_success"] == n
    assert not port_open(rec["metrics"]["prometheus_url"].removeprefix("http://"))


def test_a_failure_leaves_no_bundle_and_no_process(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bridge import record

    seen: dict[str, str] = {}

    def boom(self, b, *a, **k):  # type: ignore[no-untyped-def]
        seen["prometheus"] = b.prometheus.url.removeprefix("http://")
        seen["replica"] = b.actuator.replicas("cpu")[0][1]
        raise RuntimeError("injected failure")

    monkeypatch.setattr(record.Recorder, "_service_times", boom)
    sched = tmp_path / "s.yaml"
    sched.write_text(SCHEDULE)
    out = tmp_path / "bundles" / "b"
    with pytest.raises(RuntimeError, match="injected"):
        record.Recorder(sched, out).run()
    assert not out.exists() and list(out.parent.iterdir()) == []
    assert seen and not port_open(seen["prometheus"]) and not port_open(seen["replica"])


def test_bad_input_is_one_clear_error_before_anything_starts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bridge.record import Recorder

    with pytest.raises(ConfigError, match="no such file"):
        Recorder(tmp_path / "missing.yaml", tmp_path / "out")
    bad = tmp_path / "bad.yaml"
    bad.write_text(SCHEDULE.replace("  schedule:", "  shedule:"))
    with pytest.raises(ConfigError, match=r"bad.yaml: traffic.shedule: Extra inputs"):
        Recorder(bad, tmp_path / "out")
    ok = tmp_path / "ok.yaml"
    ok.write_text(SCHEDULE)
    (tmp_path / "out").mkdir()
    with pytest.raises(KisimError, match="already exists"):
        Recorder(ok, tmp_path / "out")


SWEEP_SCHEDULE = """
apiVersion: kisim/v1
kind: RecordSchedule
name: test-sweep
scrape_interval_s: 1
sweep: {levels: [1, 4], level_s: 8, warmup_s: 2}
pools:
  cpu:
    replicas: 1
    batching: {enabled: true, max_batch_size: 4, max_queue_delay_us: 2000}
service_times: {batch_sizes: [1, 2, 4], repeats: 3, warmup: 1}
"""


def test_record_sweep_writes_perf_analyzer_columns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A short concurrency sweep: the bundle plus perf/ (perf_analyzer's columns), which the
    perf_analyzer importer reads, and whose rows agree with the bundle's own requests."""
    from bridge.record import Recorder
    from calibration.perf_run import load_perf_run

    sched = tmp_path / "s.yaml"
    sched.write_text(SWEEP_SCHEDULE)
    out = tmp_path / "b"
    Recorder(sched, out).run()
    m = yaml.safe_load((out / "manifest.yaml").read_text())
    assert m["traffic"]["wait_time_s"] == [0.0, 0.0]
    assert [p["users"] for p in m["traffic"]["schedule"]] == [1, 4, 0]
    run = load_perf_run(out / "perf")
    assert [lv.level for lv in run.levels] == [1, 4] and run.warnings == []
    req = _rows(out / "requests.csv")
    t0 = m["start_unix_s"]
    for k, lv in enumerate(run.levels):
        a, b = t0 + 8 * k + 2, t0 + 8 * (k + 1)
        done = [float(r["start_unix_s"]) + float(r["latency_ms"]) / 1e3 for r in req]
        n = sum(a <= d < b for d in done)
        assert lv.throughput_rps == pytest.approx(n / (b - a), abs=0.06)  # printed to 0.1/s
        assert lv.infer_ms > 0 and lv.queue_ms >= 0

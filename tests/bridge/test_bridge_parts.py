"""Fast tests of the local bridge's pure parts (no servers): routing, records, PromQL,
lifecycle cost, metrics parsing, Prometheus config."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from bridge import promql
from bridge.lifecycle import ReplicaEvent, replica_seconds
from bridge.prometheus_server import render_config
from bridge.records import RequestLog
from bridge.router import Router
from bridge.triton_metrics import delta, parse


def _split(r: Router, n: int = 20_000) -> dict[str, int]:
    out: dict[str, int] = {}
    for _ in range(n):
        pool, ep = r.pick()
        out[f"{pool}:{ep}"] = out.get(f"{pool}:{ep}", 0) + 1
    return out


def test_router_share_by_endpoint_count_and_uniform_within_pool() -> None:
    r = Router(endpoints={"gpu": ["g0"], "cpu": ["c0", "c1", "c2"]}, rng=random.Random(1))
    got = _split(r)
    for k in ("gpu:g0", "cpu:c0", "cpu:c1", "cpu:c2"):  # one Service over 4 endpoints
        assert got[k] / 20_000 == pytest.approx(0.25, abs=0.02)


def test_router_gpu_share_and_fallback_when_a_pool_is_empty() -> None:
    r = Router(gpu_share=0.8, endpoints={"gpu": ["g0"], "cpu": ["c0"]}, rng=random.Random(2))
    assert _split(r)["gpu:g0"] / 20_000 == pytest.approx(0.8, abs=0.02)
    r.endpoints = {"gpu": [], "cpu": ["c0"]}  # as the twin: all traffic to the other pool
    assert _split(r, 100) == {"cpu:c0": 100}
    r.endpoints = {"gpu": [], "cpu": []}
    assert r.pick()[1] is None  # nothing ready: the request fails


def test_router_round_robin_cycles() -> None:
    r = Router(mode="round_robin", gpu_share=0.0, endpoints={"cpu": ["a", "b", "c"]})
    assert [r.pick()[1] for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]


def test_request_log_windows_count_sends_and_completions(tmp_path: Path) -> None:
    f = tmp_path / "events.csv"
    f.write_text(
        "r,99.0\n"
        "s,100.0,gpu\nc,100.0,50.000,1,gpu,g0\n"  # sent and done in [100, 101)
        "s,100.9,cpu\nc,100.9,200.000,1,cpu,c0\n"  # sent in the first, done in the second
        "s,101.5,cpu\nc,101.5,10.000,0,cpu,-\n"  # failed in the second
        "w,102.0\ns,101.9"  # a partial line waits for the next read
    )
    log = RequestLog(f)
    log.read()
    assert log.ready_at == 99.0 and log.watermark == 102.0
    w1, w2 = log.window(100.0, 101.0), log.window(101.0, 102.0)
    assert (w1.offered, w1.served, w1.errors) == (2, 1, 0)
    assert (w2.offered, w2.served, w2.errors) == (1, 1, 1)
    assert w2.latencies_s.tolist() == [0.2]
    with f.open("a") as fh:
        fh.write(",gpu\nw,103.0\n")
    log.read()
    assert len(log.sent) == 4 and log.watermark == 103.0
    out = tmp_path / "requests.csv"
    assert log.write_requests_csv(out) == 3
    assert out.read_text().splitlines()[0] == "start_unix_s,latency_ms,ok,pool,endpoint"


def test_replica_seconds_is_the_overlap_of_lifetimes() -> None:
    ev = [
        ReplicaEvent(10.0, "cpu", "cpu-0", "created"),
        ReplicaEvent(15.0, "cpu", "cpu-0", "ready"),
        ReplicaEvent(30.0, "cpu", "cpu-1", "created"),
        ReplicaEvent(35.0, "cpu", "cpu-1", "terminated"),
        ReplicaEvent(0.0, "gpu", "gpu-0", "created"),
    ]
    assert replica_seconds(ev, "cpu", 0.0, 20.0) == 10.0
    assert replica_seconds(ev, "cpu", 20.0, 40.0) == 20.0 + 5.0
    assert replica_seconds(ev, "gpu", 5.0, 6.0) == 1.0


def test_promql_queries_name_their_series_and_ranges() -> None:
    s = promql.Selectors()
    assert promql.dur(15) == "15000ms" and promql.dur(0.25) == "250ms"
    q = promql.mean_batch_size(s, 8)
    assert (
        "last_over_time(nv_inference_count{" in q and "nv_inference_exec_count" in q
        and "[8000ms]" in q and "offset 8000ms" in q
    )  # fmt: skip
    assert "kube_pod_status_ready" in promql.cpu_util(s, 60)
    assert promql.queue_length(s) == 'sum(nv_inference_pending_request_count{job="triton"})'
    assert 'pool="gpu"' in promql.triton_success(s.pool("gpu"), 8)


def test_triton_metrics_parse_sums_label_sets() -> None:
    text = (
        "# HELP nv_inference_count x\n"
        'nv_inference_count{model="m",version="1"} 10\n'
        'nv_inference_count{model="n",version="1"} 5\n'
        'nv_inference_request_failure{model="m",reason="REJECTED",version="1"} 2\n'
        "bad line\n"
    )
    got = parse(text)
    assert got["nv_inference_count"] == 15 and got["nv_inference_request_failure"] == 2
    assert delta(got, {"nv_inference_count": 4})["nv_inference_count"] == 11


def test_prometheus_config_scrapes_file_sd_and_node_exporter(tmp_path: Path) -> None:
    cfg = yaml.safe_load(render_config(0.5, tmp_path / "t.json", "127.0.0.1:9"))
    assert cfg["global"]["scrape_interval"] == "500ms"
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["triton"]["file_sd_configs"][0]["files"] == [str(tmp_path / "t.json")]
    assert jobs["cadvisor"]["static_configs"][0]["targets"] == ["127.0.0.1:9"]


def test_observer_counter_ranges_reach_t0_and_no_further(monkeypatch: pytest.MonkeyPatch) -> None:
    """Triton's counters grow from the last scrape at or before a range's start: the first
    Window's range and the episode's start exactly at t0 (the scrape before the first
    request), later Windows read their own `max(window, rate_window_s)`."""
    from bridge.observer import Observer
    from kisim.core.config import MetricsConfig

    obs = Observer("http://127.0.0.1:1", MetricsConfig(scrape_interval_s=1, rate_window_s=8))
    asked: list[tuple[str, float]] = []
    monkeypatch.setattr(obs, "scalar", lambda q, at, retries=None: asked.append((q, at)) or 1.0)

    def wait_query(at: float, window: float, elapsed: float) -> str:
        asked.clear()
        obs.view(at, window, elapsed)
        return next(q for q, _ in asked if "nv_inference_queue_duration_us" in q)

    assert "[8000ms]" in wait_query(108.0, 8.0, 8.0) and "offset 8000ms" in wait_query(
        108.0, 8.0, 8.0)  # fmt: skip
    assert "[5000ms]" in wait_query(105.0, 5.0, 5.0)  # a short first window: back to t0 only
    assert "[8000ms]" in wait_query(130.0, 5.0, 30.0)  # later: the rate window
    asked.clear()
    v = obs.episode(100.0, 24.0)
    assert {at for _, at in asked} == {124.0}
    assert any("[24000ms]" in q and "offset 24000ms" in q for q, _ in asked)
    n = len(asked)
    assert obs.episode(100.0, 24.0) is v and len(asked) == n  # one evaluation per episode end
    obs.episode(100.0, 32.0)
    assert len(asked) == 2 * n

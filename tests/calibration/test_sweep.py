"""`kisim record`'s sweep mode end to end without a recording: the sweep's perf_analyzer
columns (bridge/record/perf_csv.py) are written from a bundle the twin draws from a known
device under a perf_analyzer-style concurrency sweep (closed loop, no think time), then
calibrated from and validated against through calibration/perf_analyzer.py.

The truth (synthetic_truth.TRUE): a batch of one takes 9 ms (lognormal cv 0.15), overhead
25 ms (cv 0.25), one instance, batching off. At concurrency N the cycle is 34 ms + queue, so
levels 1, 2, 4, 8 run the instance at 26 %, 53 %, ~100 %, 100 %.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from synthetic_truth import TRUE, true_scenario

from bridge.record.perf_csv import perf_rows, write_perf_run
from calibration.perf_analyzer import calibrate_perf
from calibration.perf_run import load_perf_run
from calibration.perf_validate import validate_perf
from calibration.synth import write_synthetic_bundle
from kisim.core.config import Scenario

LEVELS = [1, 2, 4, 8]
LEVEL_S, WARMUP_S = 30.0, 5.0


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sc = true_scenario(users=LEVELS, step_s=LEVEL_S, batching={"enabled": False}, name="sweep")
    data = sc.model_dump(mode="json")
    data["traffic"]["wait_time_s"] = [0.0, 0.0]  # perf_analyzer: the next request at once
    data["traffic"]["spawn_rate_users_s"] = 1000.0
    sc = Scenario.model_validate(data)
    b = write_synthetic_bundle(tmp_path_factory.mktemp("sweep") / "b", sc, 7, name="syn-sweep")
    man = yaml.safe_load((b / "manifest.yaml").read_text())
    (pool,) = man["pools"].values()
    write_perf_run(b, "syn-sweep", LEVELS, LEVEL_S, WARMUP_S, man["start_unix_s"], pool,
                   man["model"], {"description": "the twin"}, {}, man["recorded_at"])  # fmt: skip
    return b


def test_rows_are_triton_means_and_client_percentiles(sweep: Path) -> None:
    man = yaml.safe_load((sweep / "manifest.yaml").read_text())
    rows = perf_rows(sweep, LEVELS, LEVEL_S, WARMUP_S, man["start_unix_s"])
    assert [r["Concurrency"] for r in rows] == LEVELS
    for r in rows:
        # the format's identity: the components add up to the average latency
        parts = sum(r[c] for c in ("Client Send", "Network+Server Send/Recv", "Server Queue",
                                   "Server Compute Input", "Server Compute Infer",
                                   "Server Compute Output", "Client Recv"))  # fmt: skip
        assert parts == pytest.approx(r["Avg latency"], rel=1e-9)
        assert r["p50 latency"] <= r["p90 latency"] <= r["p95 latency"] <= r["p99 latency"]
        # Triton's compute per request: 9 ms, its mean over >= 700 requests within ~2 %
        assert r["Server Compute Infer"] == pytest.approx(TRUE["base_ms"] * 1e3, rel=0.03)
    # closed loop without think time: throughput = N / mean latency (Little), per level
    for r in rows:
        assert r["Inferences/Second"] == pytest.approx(
            r["Concurrency"] / (r["Avg latency"] * 1e-6), rel=0.03
        )
    # at saturation the instance serves 1 / 9 ms
    assert rows[-1]["Inferences/Second"] == pytest.approx(1e3 / TRUE["base_ms"], rel=0.03)


def test_sweep_is_calibrated_from_and_validated_against(sweep: Path) -> None:
    run = load_perf_run(sweep / "perf")
    assert run.mode == "concurrency" and run.warnings == []
    fit = calibrate_perf([run], "from-sweep")
    dev = fit.calibration.devices["cpu"]
    # means over thousands of requests: the curve and overhead within a few per cent
    assert dev.service.base_ms == pytest.approx(TRUE["base_ms"], rel=0.03)
    assert dev.overhead_ms == pytest.approx(TRUE["overhead_ms"], rel=0.04)
    # one common cv from the concurrency-1 spread: sd of latency / |(exec, overhead)| =
    # sqrt((9 x 0.15)^2 + (25 x 0.25)^2) / sqrt(9^2 + 25^2) = 0.24 (+- the lognormal-through-
    # p50/p90 approximation of a sum of lognormals)
    expect = math.hypot(9 * 0.15, 25 * 0.25) / math.hypot(9, 25)
    assert dev.service.noise.cv == pytest.approx(expect, abs=0.04)
    v = validate_perf(fit.calibration, [run], seeds=3, measure_s=LEVEL_S - WARMUP_S)
    s = v.summary()
    assert s["levels"] == 4 and v.held_in == ["syn-sweep-perf"]
    # the twin is the truth here: errors at the noise of 25 s levels (~1-3 %)
    assert s["throughput_rps_mape"] < 0.04
    assert s["p50_ms_mape"] < 0.08
    assert abs(s["p50_ms_bias"]) < 0.06

"""perf_analyzer runs as a calibration and validation source (calibration/perf_analyzer.py),
on genuine perf_analyzer output (fixtures/perf_analyzer/*/SOURCE.md names where it is from).

The fixture is four concurrency levels against one inception_graphdef instance without the
dynamic batcher: execution (compute input + infer + output) 11.55-12.01 ms per request, so
the server saturates at 1 / 11.9 ms = 84 req/s from concurrency 2 on.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from calibration.perf_analyzer import calibrate_perf, perf_sources
from calibration.perf_run import is_perf_run, load_perf_run, read_perf_csv
from calibration.perf_validate import validate_perf
from kisim.core.errors import ConfigError, TraceError

FIX = Path(__file__).parent / "fixtures" / "perf_analyzer" / "inception_graphdef"


def test_reads_the_genuine_csv() -> None:
    run = load_perf_run(FIX)
    assert run.mode == "concurrency" and run.warnings == []
    assert [lv.level for lv in run.levels] == [1, 2, 3, 4]  # sorted (the file is by throughput)
    lv = run.levels[0]
    assert lv.throughput_rps == pytest.approx(69.2)
    assert lv.exec_ms == pytest.approx(0.206 + 11.781 + 0.019)
    assert lv.overhead_ms == pytest.approx(0.225 + 2.148 + 0.0)
    # the components add up to the mean latency: 1 / throughput at concurrency 1
    assert lv.overhead_ms + lv.queue_ms + lv.exec_ms == pytest.approx(1e3 / 69.2, rel=0.01)


def test_every_problem_at_once(tmp_path: Path) -> None:
    d = tmp_path / "run"
    shutil.copytree(FIX, d)
    rows = (d / "perf.csv").read_text().splitlines()
    rows[1] = rows[1].replace("69.2", "fast")
    rows[3] = rows[3].replace(",33669,", ",-5,")
    (d / "perf.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(TraceError) as e:
        load_perf_run(d)
    msg = str(e.value)
    assert "2 problem(s)" in msg
    assert "line 2, column 2 (Inferences/Second): not a number: 'fast'" in msg
    assert "line 4, column 5 (Server Queue): must be a finite number >= 0" in msg
    (d / "perf.csv").write_text("Concurrency,Inferences/Second\n1,2\n")
    with pytest.raises(TraceError, match=r"line 1: header lacks column\(s\) 'Client Send'"):
        load_perf_run(d)


def test_yaml_unknown_keys_warn_and_errors_are_located(tmp_path: Path) -> None:
    d = tmp_path / "run"
    shutil.copytree(FIX, d)
    y = d / "perf_run.yaml"
    text = y.read_text()
    y.write_text(text.replace("measurement_s: 5", "measurement_s: 5\ncolour: blue"))
    run = load_perf_run(d)
    assert any("colour: unknown key, ignored" in w for w in run.warnings)
    y.write_text(text.replace("replicas: 1", "replicas: 0").replace("device: gpu", "device: tpu"))
    with pytest.raises(TraceError) as e:
        load_perf_run(d)
    assert "2 problem(s)" in str(e.value)
    assert "pool.replicas" in str(e.value) and "pool.device" in str(e.value)


def test_extra_columns_are_ignored_with_a_warning(tmp_path: Path) -> None:
    # scripts prepend their own column (e.g. `Batch Size`); --verbose-csv appends some
    src = (FIX / "perf.csv").read_text().splitlines()
    f = tmp_path / "perf.csv"
    f.write_text(
        "\n".join(
            ["Batch Size," + src[0] + ",Avg latency,Avg GPU Utilization"]
            + [f"1,{r},{sum(map(int, r.split(',')[2:9]))},0.5" for r in src[1:]]
        )
    )
    warnings: list[str] = []
    mode, levels = read_perf_csv(f, 1, warnings)
    assert mode == "concurrency" and len(levels) == 4
    assert any("Batch Size, Avg GPU Utilization ignored" in w for w in warnings)


def test_calibrate_from_the_csv() -> None:
    run = load_perf_run(FIX)
    fit = calibrate_perf([run], "inception")
    dev = fit.calibration.devices["gpu"]
    execs = [lv.exec_ms for lv in run.levels]
    # batching off: every level is a batch of one; the throughput-weighted mean lies within
    assert min(execs) <= dev.service.base_ms <= max(execs)
    e = fit.estimates["service.base_ms"]
    assert e.lo < dev.service.base_ms < e.hi and e.hi - e.lo < 1.0
    assert 1.8 < dev.overhead_ms < 2.4
    # the latency spread at concurrency 1: lognormal p50 13.9, p90 18.8 ms -> cv ~0.24 of
    # latency, split over execution (12.0) and overhead (2.4): cv = 0.24 * 14.4 / 12.2
    assert dev.service.noise.cv == pytest.approx(0.28, abs=0.02)
    # what a perf_analyzer CSV cannot tell is named, in the result and the provenance
    assert "service.per_item_ms" in fit.from_prior and "startup" in fit.from_prior
    assert "service.per_item_ms" in fit.calibration.provenance
    assert "assumed: noise" in fit.calibration.provenance
    assert "fitted-on: inception-graphdef-triton-docs" in fit.calibration.provenance


def test_validate_held_out_levels() -> None:
    """Fitted on concurrency 1 and 2, validated on 3 and 4 (held out). At saturation the
    throughput is 1 / execution time and, closed loop with no think time, the latency
    N / throughput: the levels' execution times spread 4 % (11.55-12.01 ms), so a fit on two
    of them predicts the others' throughput and p50 within that spread plus the twin's
    seed noise (5 seeds x 60 s at 84 req/s: ~1 %)."""
    run = load_perf_run(FIX)
    fit_run = replace(run, levels=run.levels[:2])
    held = replace(run, levels=run.levels[2:])
    fit = calibrate_perf([fit_run], "inception-12")
    v = validate_perf(fit.calibration, [held], seeds=5, measure_s=60.0)
    s = v.summary()
    assert v.held_in == [] or v.held_in == [run.name]  # same name: flagged as held in
    assert s["levels"] == 2 and s["bands"][">80%"]["levels"] == 2
    assert s["throughput_rps_mape"] < 0.05
    assert s["p50_ms_mape"] < 0.08
    assert s["p99_ms_mape"] < 0.15
    assert abs(s["throughput_rps_bias"]) <= s["throughput_rps_mape"] + 1e-12
    # a calibration 30 % too slow is caught, with the sign: the twin serves too little
    slow = fit.calibration.model_copy(deep=True)
    slow.devices["gpu"].service.base_ms *= 1.3
    bad = validate_perf(slow, [held], seeds=2, measure_s=30.0).summary()
    assert bad["throughput_rps_bias"] < -0.15 and bad["p50_ms_bias"] > 0.15


def test_only_batch_one_runs_replay(tmp_path: Path) -> None:
    d = tmp_path / "run"
    shutil.copytree(FIX, d)
    y = d / "perf_run.yaml"
    y.write_text(
        y.read_text()
        .replace("client_batch_size: 1", "client_batch_size: 4")
        .replace(
            "batching: {enabled: false, max_batch_size: 1}",
            "batching: {enabled: false, max_batch_size: 8}",
        )
    )
    run = load_perf_run(d)
    assert run.levels[0].throughput_rps == pytest.approx(69.2 / 4)
    fit = calibrate_perf([run], "b4")  # a batch of 4 per request: the curve at b = 4
    with pytest.raises(ConfigError, match="only -b 1 runs can be replayed"):
        validate_perf(fit.calibration, [run], seeds=1, measure_s=5)


def test_sources_do_not_mix(bundles: dict[str, Path]) -> None:
    assert is_perf_run(FIX) and is_perf_run(FIX / "perf_run.yaml")
    assert not is_perf_run(bundles["step"])
    assert perf_sources([FIX]) and not perf_sources([bundles["step"]])
    with pytest.raises(TraceError, match="cannot be fitted or validated together"):
        perf_sources([FIX, bundles["step"]])


@pytest.mark.slow
def test_cli_calibrate_and_validate(tmp_path: Path) -> None:
    """End to end through the installed console script."""
    exe = Path(sys.executable).parent / "kisim"
    out = tmp_path / "cal" / "inception.yaml"
    r = subprocess.run([str(exe), "calibrate", str(FIX), "--out", str(out), "--json"],
                       capture_output=True, text=True, check=True)  # fmt: skip
    doc = json.loads(r.stdout)
    assert doc["calibration"] == str(out) and "service.per_item_ms" in doc["from_prior"]
    assert (tmp_path / "cal" / "inception.report.md").is_file()
    r = subprocess.run([str(exe), "validate", "--config", str(out), str(FIX), "--seeds", "2",
                        "--json", "--out", str(tmp_path / "val")],
                       capture_output=True, text=True, check=True)  # fmt: skip
    s = json.loads(r.stdout)
    assert s["levels"] == 4 and s["held_in"] == ["inception-graphdef-triton-docs"]
    assert math.isfinite(s["p50_ms_mape"]) and s["throughput_rps_mape"] < 0.05
    assert (tmp_path / "val" / "validation.md").is_file()


def test_request_rate_runs_replay_open_loop(tmp_path: Path) -> None:
    """A --request-rate-range run: open-loop arrivals at each rate. Below capacity the
    server answers every request, so the twin's throughput is the rate (within the Poisson
    count noise of 3 seeds x 30 s: sqrt(rate x 90) / (rate x 90) < 2 %)."""
    fit = calibrate_perf([load_perf_run(FIX)], "inception")
    d = tmp_path / "rate"
    d.mkdir()
    shutil.copy(FIX / "perf_run.yaml", d / "perf_run.yaml")
    y = d / "perf_run.yaml"
    y.write_text(y.read_text().replace("measurement_s: 5", "measurement_s: 5\n"
                                       "request_distribution: poisson"))  # fmt: skip
    head = (FIX / "perf.csv").read_text().splitlines()[0].replace("Concurrency", "Request Rate")
    rows = [f"{r},{r},200,2000,1500,200,11700,20,0,15000,21000,24000,30000" for r in (20, 40, 60)]
    (d / "perf.csv").write_text("\n".join([head, *rows]) + "\n")
    run = load_perf_run(d)
    assert run.mode == "request_rate" and [lv.level for lv in run.levels] == [20, 40, 60]
    v = validate_perf(fit.calibration, [run], seeds=3, measure_s=30.0)
    for c in v.levels:
        assert c.twin["throughput_rps"] == pytest.approx(c.level, rel=0.05)
    # queueing grows with the rate (Poisson arrivals at 24 / 47 / 71 % utilisation)
    q = [c.twin["queue_ms"] for c in v.levels]
    assert q[0] < q[1] < q[2]

"""Run directories (atomic, strict JSON), safe names, and re-rendering without episodes."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from agents.evaluation import report
from kisim.core.errors import KisimError
from kisim.core.rundir import (
    collect_runs,
    is_complete,
    read_csv,
    read_hist,
    read_summary,
    read_timeline,
    run_path,
    safe_name,
    write_run,
)
from kisim.core.summary import SUMMARY_KEYS, latency_histogram
from kisim.core.window import Window


def _window(i: int, p95: float = 50.0) -> Window:
    return Window.from_dict(dict(t_start=15.0 * i, t_end=15.0 * (i + 1), load_level=10.0, offered=10, served=10,
                  errors=0, throughput_rps=10 / 15, latency_mean_ms=math.nan, latency_p50_ms=20.0,
                  latency_p95_ms=p95, latency_p99_ms=p95 * 1.5, queue_wait_ms=1.0, slo_violations=0,
                  cpu_util=0.5, mem_util=0.25, gpu_util=0.75, gpu_desired=1, gpu_ready=1,
                  gpu_pending=0, cpu_desired=2, cpu_ready=2, cpu_pending=0, gpu_replica_s=15.0,
                  cpu_replica_s=30.0, pending_pod_s=0.0, queue_length=3, mean_batch_size=2.0,
                  placement="prefer-gpu"))  # fmt: skip


def _write(out: Path, policy: str, pattern: str, seed: int, p95: float) -> Path:
    summary = {k: 1.0 for k in SUMMARY_KEYS} | {"p95_ms": p95, "mean_ms": math.nan}
    summary |= {
        "policy": policy,
        "pattern": pattern,
        "seed": seed,
        "scenario": "s",
        "backend": "twin",
    }
    cfg = {"slo_ms": 80.0, "traffic": {"mode": "open"}, "policy": policy}
    hist = latency_histogram(np.full(10, p95 / 1000.0))
    return write_run(run_path(out, policy, pattern, seed), cfg, [_window(i, p95) for i in range(4)],
                     summary, hist)  # fmt: skip


def test_write_run_roundtrip_strict_json(tmp_path: Path) -> None:
    d = _write(tmp_path, "hpa", "ramp", 3, 42.0)
    assert is_complete(d)
    raw = (d / "summary.json").read_text()
    assert "NaN" not in raw and json.loads(raw)["mean_ms"] is None  # strict JSON
    s = read_summary(d)
    assert math.isnan(s["mean_ms"]) and s["p95_ms"] == 42.0 and s["seed"] == 3
    tl = read_timeline(d)
    assert tl["latency_p95_ms"].tolist() == [42.0] * 4 and tl["placement"][0] == "prefer-gpu"
    assert math.isnan(tl["latency_mean_ms"][0])
    rows = read_timeline(d, as_arrays=False)
    assert rows[1]["gpu_ready"] == 1 and isinstance(rows[1]["queue_length"], int)
    h = read_hist(d)
    assert h["counts"].sum() == 10 and len(h["edges_ms"]) == len(h["counts"]) + 1
    assert not list(d.glob(".*.tmp"))  # no temp files left behind


def test_incomplete_run_and_rewrite(tmp_path: Path) -> None:
    d = _write(tmp_path, "hpa", "ramp", 0, 10.0)
    (d / "summary.json").unlink()  # killed before the last file
    assert not is_complete(d) and collect_runs(tmp_path) == []
    _write(tmp_path, "hpa", "ramp", 0, 11.0)
    assert read_summary(d)["p95_ms"] == 11.0


def test_safe_name() -> None:
    assert safe_name("static-gpu") == "static-gpu"
    a, b = safe_name("ppo:/models/a.zip"), safe_name("ppo_/models/a.zip")
    assert a != b and all(c.isalnum() or c in "._-" for c in a) and a.startswith("ppo_models_a.zip")
    assert safe_name("..") != ".." and "/" not in safe_name("../../etc")


def test_collect_runs_without_manifest_uses_summary_names(tmp_path: Path) -> None:
    _write(tmp_path, "ppo:/m/x.zip", "spike", 2, 5.0)
    (r,) = collect_runs(tmp_path)
    assert (r.policy, r.pattern, r.seed) == ("ppo:/m/x.zip", "spike", 2)


def test_render_from_runs_then_from_csvs_only(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    for seed in range(3):
        for pol, eff in (("hpa", 0.0), ("kpa", -5.0), ("static-gpu", 0.0)):
            _write(out, pol, "ramp", seed, 50.0 + eff + seed)
    files = report.render(out, figures=False)  # no eval.json: names from summary.json
    summ = read_csv(files["summary"])
    sig = read_csv(files["significance"])
    assert {r["reference"] for r in sig} == {"hpa"}
    kpa = next(r for r in sig if r["policy"] == "kpa" and r["metric"] == "p95_ms")
    assert kpa["diff"] == pytest.approx(-5.0) and math.isnan(kpa["paired_p"])  # constant shift
    assert "constant difference" in kpa["note"]
    md = (out / "report.md").read_text()
    assert "†" in md and "kpa" in md
    tex = (out / "table.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and "static-gpu" in tex
    assert "p95 latency (ms)" in tex and "$\\pm$" in tex
    # with the runs gone, render works from the CSVs and leaves them untouched
    before = files["summary"].read_bytes()
    shutil.rmtree(out / "runs")
    report.render(out)
    assert files["summary"].read_bytes() == before
    assert (out / "figures" / "metrics_ci.pdf").is_file()
    assert "figures/tradeoff.png" in (out / "report.md").read_text()
    assert not (out / "figures" / "latency_cdf.png").exists()  # needs the run histograms
    assert len(read_csv(files["summary"])) == len(summ)
    with pytest.raises(KisimError, match="no runs/"):
        report.render(out, reference="kpa")
    with pytest.raises(KisimError, match="no evaluation"):
        report.render(tmp_path / "empty")


def test_formatting() -> None:
    assert report.pm(123.456, 120.0, 127.0) == "123.5 ± 3.5"
    assert report.pm(0.10804, 0.1018, 0.1142) == "0.1080 ± 0.0062"
    assert report.pm(12345.0, 12000.0, 12690.0) == "12,345 ± 345"
    assert report.pm(7.0, math.nan, math.nan) == "7"
    assert report.pm(math.nan, 0, 1) == "—"
    assert report.fmt_p(0.0004) == "<0.001" and report.fmt_p(0.0312) == "0.031"
    assert report._tex("a_b & 50%") == r"a\_b \& 50\%"

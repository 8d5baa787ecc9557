"""`kisim bench scale` at tiny sizes: every point in its own process, the files written,
ratios against the sweep's first point, and the scale scenario's layout schedulable."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from bench.scale_bench import COLUMNS, Point, bench_scale, plan
from bench.scale_point import scale_scenario
from kisim.core.rundir import read_json
from kisim.env.episode import run_windows, twin_backend


def test_plans() -> None:
    full, quick = plan(), plan(quick=True)
    assert [p.requests for p in full if p.sweep == "requests"] == [10**6, 10**7, 10**8]
    assert [p.requests for p in quick if p.sweep == "requests"] == [10**6, 10**7]
    sizes = [(p.replicas, p.nodes) for p in full if p.sweep == "cluster"]
    assert sizes == [(10, 1), (100, 10), (1000, 100)]
    # the same utilisation at every size: 10 req/s per replica
    assert {p.rate_rps / p.replicas for p in full if p.sweep == "cluster"} == {10.0}
    assert Point("requests", 1000, 100, 10_000.0, 10**8).duration_s == 10_000.0


@pytest.mark.parametrize(("replicas", "nodes"), [(10, 1), (1000, 100)])
def test_every_replica_of_the_scale_scenario_is_scheduled(replicas: int, nodes: int) -> None:
    sc = scale_scenario(replicas, nodes, rate=10.0 * replicas, duration_s=2.0)
    assert sc.metrics.latency_stats == "sketch"
    ep = run_windows(twin_backend(), sc, 0)
    assert ep.windows[-1].ready_total == replicas
    assert ep.windows[-1].pending_total == 0


@pytest.mark.slow
def test_bench_scale_tiny(tmp_path: Path) -> None:
    res = bench_scale(tmp_path, tiny=True, progress=False)
    for name in ("scale.csv", "scale.json", "scale.png", "scale.pdf"):
        assert (tmp_path / name).stat().st_size > 0, name
    with (tmp_path / "scale.csv").open() as f:
        on_disk = list(csv.DictReader(f))
    assert list(on_disk[0]) == list(COLUMNS) and len(on_disk) == 4
    assert read_json(tmp_path / "scale.json")["verdict"] == res["verdict"]
    rows = res["rows"]
    assert [float(r["served"]) for r in on_disk] == [r["served"] for r in rows]
    for sweep in ("requests", "cluster"):
        mine = [r for r in rows if r["sweep"] == sweep]
        assert len(mine) == 2
        assert mine[0]["cost_vs_ref"] == 1.0 and mine[0]["rss_vs_ref"] == 1.0  # the reference
    for r in rows:
        # open-loop Poisson arrivals: served = requests within 5 sigma (a few in flight)
        assert abs(r["served"] - r["requests"]) <= 5 * math.sqrt(r["requests"]) + r["replicas"]
        assert r["ready_replicas"] == r["replicas"]
        assert 20 < r["peak_rss_mb"] < 2048  # a Python process's own peak, not a sum
        assert r["wall_s"] > r["episode_wall_s"] > 0  # start-up counted in the first
        assert r["rps"] == pytest.approx(r["served"] / r["wall_s"])
    assert set(res["verdict"]) >= {"largest_rps", "largest_peak_rss_mb", "cost_growth_over_cluster"}

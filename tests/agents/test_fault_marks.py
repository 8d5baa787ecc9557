"""Fault windows in the report: read from the runs' configs, shaded on the time series."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.patches import Rectangle

from agents.evaluation import figures, report
from agents.evaluation.fault_marks import fault_spans_of
from kisim.core.rundir import collect_runs, read_timeline, run_path, write_run
from kisim.core.summary import SUMMARY_KEYS, latency_histogram
from kisim.core.window import Window

FAULTS = {"events": [{"kind": "node_loss", "node": "n1", "at_s": 15.0, "duration_s": 30.0},
                     {"kind": "scrape_failure", "at_s": 45.0}]}  # fmt: skip


def _window(i: int) -> Window:
    return Window.from_dict(dict(
        t_start=15.0 * i, t_end=15.0 * (i + 1), load_level=10.0, offered=10, served=10,
        errors=0, throughput_rps=10 / 15, latency_mean_ms=math.nan, latency_p50_ms=20.0,
        latency_p95_ms=50.0, latency_p99_ms=70.0, queue_wait_ms=1.0, slo_violations=0,
        cpu_util=0.5, mem_util=0.25, gpu_util=0.75, gpu_desired=1, gpu_ready=1, gpu_pending=0,
        cpu_desired=2, cpu_ready=2, cpu_pending=0, gpu_replica_s=15.0, cpu_replica_s=30.0,
        pending_pod_s=0.0, queue_length=3, mean_batch_size=2.0,
        placement="prefer-gpu"))  # fmt: skip


def _write(out: Path, policy: str, pattern: str, seed: int, faults: dict | None) -> None:
    summary = {k: 1.0 for k in SUMMARY_KEYS}
    summary |= {"policy": policy, "pattern": pattern, "seed": seed, "scenario": "s",
                "backend": "twin"}  # fmt: skip
    cfg = {"slo_ms": 80.0, "duration_s": 60.0, "traffic": {"mode": "open"}, "policy": policy}
    if faults is not None:
        cfg["faults"] = faults
    write_run(run_path(out, policy, pattern, seed), cfg, [_window(i) for i in range(4)], summary,
              latency_histogram(np.full(10, 0.05)))  # fmt: skip


def test_spans_from_configs_and_shaded_on_every_panel(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    for seed in range(2):
        for pol in ("hpa", "static"):
            _write(out, pol, "crash", seed, FAULTS)
            _write(out, pol, "calm", seed, None)
    records = collect_runs(out)
    spans = fault_spans_of(records)
    assert spans == {"crash": [(15.0, 45.0, "node_loss"), (45.0, 60.0, "scrape_failure")]}
    tl = {p: [read_timeline(r.path) for r in records if r.policy == p and r.pattern == "crash"]
          for p in ("hpa", "static")}  # fmt: skip
    pols = ["hpa", "static"]
    labels, colors = figures.short_labels(pols), figures.policy_colors(pols)
    fig = figures.fig_timeseries("crash", tl, pols, labels, colors, faults=spans["crash"])
    red = to_rgb(figures.FAULT_COLOR)
    for ax in fig.axes:
        shaded = [p for p in ax.patches
                  if isinstance(p, Rectangle) and p.get_facecolor()[:3] == red]
        assert len(shaded) == 2
    report.render(out)  # the report passes the spans through
    assert (out / "figures" / "timeseries_crash.png").is_file()

"""A sweep recording as perf_analyzer would have written it: ``perf/perf.csv`` (the columns
of ``perf_analyzer -f … --verbose-csv``, one row per level) and ``perf/perf_run.yaml`` (the
served configuration), so that `kisim calibrate` / `kisim validate` read the local stack's
sweep exactly as they read a Triton user's perf_analyzer output.

Per level the measured interval is [level start + warm-up, level end) of the schedule:
- ``Inferences/Second``: successful requests *completing* in it, per second (one item each);
- ``p50/p90/p95/p99 latency``, ``Avg latency``: the client's round trips of those requests,
  µs (linear-interpolated percentiles);
- ``Server Queue``, ``Server Compute Input/Infer/Output``: increments of Triton's
  ``nv_inference_{queue,compute_input,compute_infer,compute_output}_duration_us`` over the
  interval's scrapes (the last sample at or before each edge), per successful request of
  ``nv_inference_request_success`` over the same scrapes — Triton's own means, as
  perf_analyzer reads them from the server's statistics;
- ``Client Send``, ``Client Recv``: 0 — Locust's tritonclient round trip is not split;
  ``Network+Server Send/Recv`` = Avg latency - (queue + compute), everything else (the
  format's identity: the components add up to the average latency);
- ``request/response``, ``response wait``: 0 and Avg latency (not split either).

Pure functions of a bundle folder's ``requests.csv`` and ``prometheus/`` (bridge code may not
import `calibration`), so a sweep can be re-derived from any bundle and tested without a
recording.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kisim.core.trace_bundle import PERF_COLUMNS, PERF_VERBOSE_COLUMNS

HEADER: tuple[str, ...] = ("Concurrency", *PERF_COLUMNS, *PERF_VERBOSE_COLUMNS)
SERVER = {
    "Server Queue": "nv_inference_queue_duration_us",
    "Server Compute Input": "nv_inference_compute_input_duration_us",
    "Server Compute Infer": "nv_inference_compute_infer_duration_us",
    "Server Compute Output": "nv_inference_compute_output_duration_us",
}
REQUESTS = "nv_inference_request_success"


def _series(prom_dir: Path, metric: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(times, values) of every series of a raw query_range export; [] when absent."""
    f = prom_dir / f"{metric}.json"
    if not f.is_file():
        return []
    data = json.loads(f.read_text())
    out = []
    for s in data.get("data", {}).get("result", []):
        vals = s.get("values") or []
        t = np.array([float(v[0]) for v in vals])
        x = np.array([float(v[1]) for v in vals])
        out.append((t, x))
    return out


def _increase(series: list[tuple[np.ndarray, np.ndarray]], a: float, b: float) -> float:
    """Sum over series of the counter's growth between its last samples at or before a and b
    (a drop is a restart: the new value counts, as Prometheus' increase())."""
    tot = 0.0
    for t, x in series:
        ia = int(np.searchsorted(t, a, side="right")) - 1
        ib = int(np.searchsorted(t, b, side="right")) - 1
        if ia < 0 or ib <= ia:
            continue
        d = np.diff(x[ia : ib + 1])
        d[d < 0] = x[ia + 1 : ib + 1][d < 0]
        tot += float(d.sum())
    return tot


def perf_rows(
    bundle: Path, levels: Sequence[float], level_s: float, warmup_s: float, t0: float
) -> list[dict[str, float]]:
    """One perf_analyzer row per level (level k holds over [t0 + k level_s, t0 + (k+1)
    level_s)); the values as the module doc defines them, times in µs."""
    with (bundle / "requests.csv").open(newline="") as f:
        rd = csv.DictReader(f)
        rows = [(float(r["start_unix_s"]), float(r["latency_ms"]), r["ok"].strip() in ("1", "true"))
                for r in rd]  # fmt: skip
    start = np.array([r[0] for r in rows])
    lat = np.array([r[1] for r in rows])
    ok = np.array([r[2] for r in rows], bool)
    done = start + lat / 1e3
    prom = bundle / "prometheus"
    server = {col: _series(prom, m) for col, m in SERVER.items()}
    req = _series(prom, REQUESTS)
    out = []
    for k, level in enumerate(levels):
        a = t0 + k * level_s + warmup_s
        b = t0 + (k + 1) * level_s
        m = ok & (done >= a) & (done < b)
        x = lat[m] * 1e3  # µs
        row: dict[str, float] = {"Concurrency": float(level)}
        row["Inferences/Second"] = float(m.sum()) / (b - a)
        n_srv = _increase(req, a, b)
        for col, series in server.items():
            row[col] = _increase(series, a, b) / n_srv if n_srv > 0 and series else 0.0
        if len(x):
            p50, p90, p95, p99 = np.percentile(x, [50, 90, 95, 99])
            avg = float(x.mean())
        else:
            p50 = p90 = p95 = p99 = avg = math.nan
        inside = sum(row[c] for c in SERVER)
        row.update({
            "Client Send": 0.0, "Client Recv": 0.0,
            "Network+Server Send/Recv": max(avg - inside, 0.0) if math.isfinite(avg) else math.nan,
            "p50 latency": float(p50), "p90 latency": float(p90), "p95 latency": float(p95),
            "p99 latency": float(p99), "Avg latency": avg, "request/response": 0.0,
            "response wait": avg,
        })  # fmt: skip
        out.append(row)
    return out


def write_perf_csv(path: Path, rows: list[dict[str, float]]) -> None:
    """The rows in perf_analyzer's column order (µs rounded to whole µs, as it prints them;
    the throughput to 0.1/s). A level without completions is left out."""
    lines = [",".join(HEADER)]
    for r in rows:
        if not all(math.isfinite(r[c]) for c in HEADER):
            continue
        vals = [f"{r['Concurrency']:g}", f"{r['Inferences/Second']:.1f}"]
        vals += [str(int(round(r[c]))) for c in HEADER[2:]]
        lines.append(",".join(vals))
    path.write_text("\n".join(lines) + "\n")


def write_perf_run(
    bundle: Path, name: str, levels: Sequence[float], level_s: float, warmup_s: float,
    t0: float, pool: dict[str, Any], model: dict[str, Any], hardware: dict[str, Any],
    triton: dict[str, Any], recorded_at: str,
) -> Path:  # fmt: skip
    """``BUNDLE/perf/perf.csv`` and ``perf_run.yaml`` (kind PerfAnalyzerRun) for a sweep."""
    d = bundle / "perf"
    d.mkdir(exist_ok=True)
    write_perf_csv(d / "perf.csv", perf_rows(bundle, levels, level_s, warmup_s, t0))
    doc = {
        "apiVersion": "kisim/v1",
        "kind": "PerfAnalyzerRun",
        "name": f"{name}-perf",
        "csv": "perf.csv",
        "source": f"kisim record sweep ({name}): concurrency "
        f"{', '.join(f'{x:g}' for x in levels)}, {level_s:g} s per level, first {warmup_s:g} s "
        "not measured; columns from the bundle (bridge/record/perf_csv.py)",
        "recorded_at": recorded_at,
        "client_batch_size": 1,
        "measurement_s": level_s - warmup_s,
        "model": model,
        "hardware": hardware,
        "triton": triton,
        "pool": pool,
    }
    (d / "perf_run.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return d

"""`kisim bench scale`: the twin's speed and memory against requests and cluster size.

Two sweeps of the scale scenario (`bench.scale_point.scale_scenario`: the default devices,
one replica in ten a batching GPU replica, open-loop Poisson load, static, latencies
streamed into the sketch):

* **requests**: 1,000 replicas on 100 nodes at 10,000 req/s (the 100-node check) for
  1 M, 10 M and 100 M requests (100 s, 1,000 s, 10,000 s); `--quick` stops at 10 M;
* **cluster size**: 10, 100 and 1,000 replicas on 1, 10 and 100 nodes at 10 req/s per
  replica (the same utilisation), 10 M requests each (1 M with `--quick`): long enough that
  the one-off set-up (scheduling 1,000 pods over 100 nodes, ~0.3 s) is not what is
  measured; the per-request figure is the episode's wall (or CPU) time over its requests.

Each point runs in a fresh process (`python -m bench.scale_point`), one after another, so
its peak RSS (`os.wait4`'s ``ru_maxrss``) is its own and it pays every fixed cost a user
pays: interpreter start, imports, numba's cache load, scenario validation. Per point:
requests/s over the whole process (incl. start-up), per CPU second of it (what a loaded
machine moves least), and over the episode alone; wall µs per request; peak RSS. The
reference of each sweep is its smallest point, measured in the same run: ratios
(per-request cost, RSS) are against it, so a loaded machine moves numerator and
denominator alike. Writes ``scale.csv``, ``scale.json`` and
``scale.png``/``.pdf`` under the output folder, atomically.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kisim.core.rundir import write_csv, write_json

REQUESTS_FULL = (1_000_000, 10_000_000, 100_000_000)
CLUSTERS = ((10, 1), (100, 10), (1000, 100))  # (replicas, nodes)
BIG = (1000, 100, 10_000.0)  # replicas, nodes, req/s of the requests sweep (the check)
RATE_PER_REPLICA = 10.0
TARGET_RPS = 400_000  # issue 16: >= 400 k simulated req/s at 100 M requests ...
TARGET_RSS_MB = 1024  # ... in <= 1 GB peak RSS
TARGET_COST_GROWTH = 1.5  # per-request cost from 10 to 1,000 replicas
COLUMNS = ("sweep", "replicas", "nodes", "rate_rps", "duration_s", "requests", "served",
           "wall_s", "cpu_s", "episode_wall_s", "episode_cpu_s", "rps", "cpu_rps",
           "episode_rps", "us_per_request", "episode_us_per_request",
           "episode_cpu_us_per_request", "cost_vs_ref",
           "peak_rss_mb", "rss_vs_ref", "ready_replicas", "p95_ms")  # fmt: skip


@dataclass(frozen=True)
class Point:
    sweep: str  # "requests" | "cluster"
    replicas: int
    nodes: int
    rate_rps: float
    requests: int

    @property
    def duration_s(self) -> float:
        return self.requests / self.rate_rps


def plan(quick: bool = False, tiny: bool = False) -> list[Point]:
    """The points, reference (smallest) first in each sweep. `tiny`: the test's sizes."""
    if tiny:
        return [Point("requests", 20, 2, 200.0, n) for n in (2_000, 8_000)] + \
               [Point("cluster", r, n, 10.0 * r, 2_000) for r, n in ((10, 1), (20, 2))]  # fmt: skip
    reqs = REQUESTS_FULL[:2] if quick else REQUESTS_FULL
    per_cluster = 1_000_000 if quick else 10_000_000  # set-up (binding 1,000 pods) amortised
    r, n, rate = BIG
    by_requests = [Point("requests", r, n, rate, k) for k in reqs]
    by_size = [Point("cluster", r, n, RATE_PER_REPLICA * r, per_cluster) for r, n in CLUSTERS]
    return by_requests + by_size


def measure(p: Point, seed: int = 0, mode: str = "sketch") -> dict[str, Any]:
    """Run one point in a child process: its JSON line, its wall seconds and peak RSS."""
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip
    cmd = [sys.executable, "-m", "bench.scale_point", str(p.replicas), str(p.nodes),
           repr(p.rate_rps), repr(p.duration_s), mode, str(seed)]  # fmt: skip
    with tempfile.TemporaryFile() as errf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, env=env,
                                cwd=Path(__file__).resolve().parents[1])  # fmt: skip
        assert proc.stdout is not None
        out = proc.stdout.read()  # the child's one JSON line; EOF when it exits
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
        errf.seek(0)
        err = errf.read().decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"bench scale point {p}: the child failed: {(err or ['no output'])[-1]}")
    child = json.loads(out.decode().strip().splitlines()[-1])
    return {**asdict(p), "duration_s": p.duration_s, **child, "wall_s": wall,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024.0}  # ru_maxrss: kB on Linux


def _derive(rows: list[dict[str, Any]]) -> None:
    for sweep in ("requests", "cluster"):
        mine = [r for r in rows if r["sweep"] == sweep]
        for r in mine:
            r["rps"] = r["served"] / r["wall_s"]
            r["cpu_rps"] = r["served"] / r["cpu_s"]  # per CPU second: what load does not move
            r["episode_rps"] = r["served"] / r["episode_wall_s"]
            r["us_per_request"] = 1e6 * r["wall_s"] / r["served"]
            r["episode_us_per_request"] = 1e6 * r["episode_wall_s"] / r["served"]
            r["episode_cpu_us_per_request"] = 1e6 * r["episode_cpu_s"] / r["served"]
        if mine:
            ref = mine[0]
            for r in mine:
                # CPU, not wall: a ratio of two runs minutes apart on a shared machine
                r["cost_vs_ref"] = (r["episode_cpu_us_per_request"]
                                    / ref["episode_cpu_us_per_request"])  # fmt: skip
                r["rss_vs_ref"] = r["peak_rss_mb"] / ref["peak_rss_mb"]


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's done-when numbers, from the largest points measured."""
    req = [r for r in rows if r["sweep"] == "requests"]
    clu = [r for r in rows if r["sweep"] == "cluster"]
    big = max(req, key=lambda r: r["requests"]) if req else None
    out: dict[str, Any] = {}
    if big is not None:
        out |= {"largest_requests": big["requests"], "largest_rps": big["rps"],
                "largest_cpu_rps": big["cpu_rps"], "largest_peak_rss_mb": big["peak_rss_mb"],
                "rss_growth_over_requests": big["rss_vs_ref"],
                "meets_rps": big["rps"] >= TARGET_RPS,
                "meets_rss": big["peak_rss_mb"] <= TARGET_RSS_MB}  # fmt: skip
    if clu:
        growth = max(clu, key=lambda r: r["replicas"])["cost_vs_ref"]
        out |= {"cost_growth_over_cluster": growth,
                "meets_cost_growth": growth <= TARGET_COST_GROWTH}  # fmt: skip
    return out


def bench_scale(out: Path, quick: bool = False, tiny: bool = False, seed: int = 0,
                progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Measure every point of `plan`, write CSV, JSON and the figure under `out`."""
    from tqdm import tqdm

    from bench.scale_figure import plot_scale

    points = plan(quick, tiny)
    load0 = os.getloadavg()
    rows = []
    bar = tqdm(points, desc="bench scale", unit="point", disable=not progress, file=sys.stderr)
    for p in bar:
        bar.set_postfix_str(f"{p.sweep}: {p.replicas} replicas, {p.requests:,} requests")
        rows.append(measure(p, seed))
    _derive(rows)
    result = {
        "rows": rows,
        "verdict": verdict(rows),
        "targets": {"rps": TARGET_RPS, "peak_rss_mb": TARGET_RSS_MB,
                    "cost_growth": TARGET_COST_GROWTH},  # fmt: skip
        "machine": {"host": platform.node(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "loadavg_before": load0,
                    "loadavg_after": os.getloadavg()},  # fmt: skip
        "command": " ".join(["kisim bench scale", *(["--quick"] if quick else [])]),
        "seed": seed,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "scale.csv", rows, COLUMNS)
    write_json(out / "scale.json", result)
    plot_scale(rows, out, result["machine"])
    return result


def table(result: dict[str, Any]) -> str:
    """The rows and the verdict as text."""
    lines = [f"{'sweep':8s} {'replicas':>8s} {'nodes':>5s} {'requests':>12s} {'req/s':>10s} "
             f"{'req/CPU s':>10s} {'episode req/s':>13s} {'CPU us/req':>7s} {'cost x':>6s} "
             f"{'RSS MB':>7s} {'RSS x':>6s}"]  # fmt: skip
    for r in result["rows"]:
        lines.append(f"{r['sweep']:8s} {r['replicas']:8d} {r['nodes']:5d} {r['served']:12,.0f} "
                     f"{r['rps']:10,.0f} {r['cpu_rps']:10,.0f} {r['episode_rps']:13,.0f} "
                     f"{r['episode_cpu_us_per_request']:7.2f} {r['cost_vs_ref']:6.2f} "
                     f"{r['peak_rss_mb']:7.0f} {r['rss_vs_ref']:6.2f}")  # fmt: skip
    m = result["machine"]
    lines.append(f"machine: {m['cpu_count']} cpus, load avg before {m['loadavg_before'][0]:.2f}, "
                 f"after {m['loadavg_after'][0]:.2f}")  # fmt: skip
    lines.append("verdict: " + json.dumps(result["verdict"]))
    return "\n".join(lines)

#!/usr/bin/env python3
"""Speed-up of `kisim sweep --ray` from one Ray worker node to two (docs/ray.md).

Starts a Ray head (1 CPU) with ``ray start`` in network and PID namespaces of its own (only
loopback exists there, so nothing leaves the machine, and everything started ends with the
script), then runs, `--repeats` times each: the sweep without Ray (``--jobs 1``, the
reference) and on the head alone (1 worker CPU), interleaved; then joins a second node
(``ray start --address``, 1 CPU) and runs the same sweep on both. Each sweep writes to a
fresh folder, so every run is run. It reports the median wall time of the runs (the
harness's ``elapsed_s``: runs only, not Python's start) and of the whole command, the
speed-ups, the load average before and after, and writes JSON to --out.

    .venv/bin/python scripts/ray_speedup.py --repeats 3 --out results/ray-speedup/long-runs.json
    .venv/bin/python scripts/ray_speedup.py --short --out results/ray-speedup/short-runs.json

(as root: creating namespaces needs it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
PORT = 6379
SHORT = ["--param", "pools.cpu.max_replicas=1,2,4,8", "--policies", "hpa,static", "--runs", "2",
         "--duration", "1200", "--metrics", "p95_ms"]  # fmt: skip
"""16 short runs (~0.1-0.3 s each): Ray's per-job worker start-up dominates."""
LONG = ["--param", "traffic.pattern.params.peak=200,400", "--param",
        "pools.cpu.max_replicas=4,8", "--policies", "hpa", "--runs", "2", "--duration", "3600",
        "--metrics", "p95_ms"]  # fmt: skip
"""8 longer runs (~1 M requests each, seconds each): the runs dominate."""
SWEEP = LONG


def _sweep(out: Path, extra: list[str]) -> tuple[float, float]:
    """(runs' wall s from eval.json, the command's wall s)."""
    t0 = time.perf_counter()
    subprocess.run([str(BIN / "kisim"), "sweep", *SWEEP, "--out", str(out), *extra], check=True,
                   capture_output=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    wall = time.perf_counter() - t0
    return float(json.loads((out / "eval.json").read_text())["elapsed_s"]), wall


def _ray(*args: str) -> None:
    subprocess.run([str(BIN / "ray"), *args], check=True, capture_output=True)


def inside(repeats: int, work: Path) -> dict[str, object]:
    """Runs in the namespaces: the measurements."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    os.environ["HOME"] = str(work)  # Ray keeps its auth token in ~/.ray: this cluster's own
    addr = f"127.0.0.1:{PORT}"
    load0 = os.getloadavg()
    _ray("start", "--head", "--node-ip-address=127.0.0.1", "--port", str(PORT), "--num-cpus",
         "1", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={work}/r")
    _sweep(work / "warm", ["--ray", addr])  # imports and compiled kernels cached on disk
    res: dict[str, list[tuple[float, float]]] = {"local": [], "ray1": [], "ray2": []}
    for i in range(repeats):  # the head alone, and the reference, interleaved
        res["local"].append(_sweep(work / f"local{i}", ["--jobs", "1"]))
        res["ray1"].append(_sweep(work / f"ray1-{i}", ["--ray", addr]))
    _ray("start", f"--address={addr}", "--node-ip-address=127.0.0.1", "--num-cpus", "1",
         "--disable-usage-stats")  # fmt: skip
    _sweep(work / "warm2", ["--ray", addr])  # the new node's workers start
    for i in range(repeats):
        res["ray2"].append(_sweep(work / f"ray2-{i}", ["--ray", addr]))
    _ray("stop")
    load1 = os.getloadavg()
    same = all((work / f"{k}{i}" / "summary.csv").read_bytes() ==
               (work / "local0" / "summary.csv").read_bytes()
               for k in ("local", "ray1-", "ray2-") for i in range(repeats))  # fmt: skip
    med = {k: {"runs_s": statistics.median(r for r, _ in v),
               "command_s": statistics.median(w for _, w in v),
               "all_runs_s": [round(r, 3) for r, _ in v]} for k, v in res.items()}  # fmt: skip
    return {
        "sweep": " ".join(SWEEP), "repeats": repeats,
        "median": med,
        "speedup_1_to_2_workers_runs": med["ray1"]["runs_s"] / med["ray2"]["runs_s"],
        "speedup_1_to_2_workers_command": med["ray1"]["command_s"] / med["ray2"]["command_s"],
        "ray1_vs_local_runs": med["local"]["runs_s"] / med["ray1"]["runs_s"],
        "summary_csv_identical": same, "loadavg_before": load0, "loadavg_after": load1,
        "cpus": os.cpu_count(),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--short", action="store_true", help="the 16 short runs instead")
    ap.add_argument("--out", type=Path, default=Path("results/ray-speedup.json"))
    ap.add_argument("--inside", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    global SWEEP
    SWEEP = SHORT if a.short else LONG
    if a.inside is not None:  # in the namespaces
        print(json.dumps(inside(a.repeats, a.inside)))
        return
    work = Path(tempfile.mkdtemp(prefix="krs", dir="/tmp"))  # short: Ray's socket paths
    try:
        r = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", sys.executable,
                            __file__, "--repeats", str(a.repeats), "--inside", str(work),
                            *(["--short"] if a.short else [])],
                           capture_output=True, text=True)  # fmt: skip
        if r.returncode:
            sys.exit(f"ray_speedup: failed: {r.stderr.strip().splitlines()[-1:]}")
        data = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(data, indent=2) + "\n")
    m = data["median"]
    print(f"runs only, median of {a.repeats}: local {m['local']['runs_s']:.1f} s, Ray 1 worker "
          f"{m['ray1']['runs_s']:.1f} s, 2 workers {m['ray2']['runs_s']:.1f} s -> speed-up "
          f"{data['speedup_1_to_2_workers_runs']:.2f}x (whole command "
          f"{data['speedup_1_to_2_workers_command']:.2f}x); summary.csv identical: "
          f"{data['summary_csv_identical']}; load average {data['loadavg_before'][0]:.1f} -> "
          f"{data['loadavg_after'][0]:.1f} on {data['cpus']} CPUs")  # fmt: skip


if __name__ == "__main__":
    main()

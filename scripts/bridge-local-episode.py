#!/usr/bin/env python
"""Run a short real episode on the local stack and print each Window next to Triton's
own counters (read directly from every replica's /metrics at each window's end).

Usage: .venv/bin/python scripts/bridge-local-episode.py [--windows 4] [--window 10]
       [--users 20] [--scrape 1] [--scale-at 1] [--keep DIR]
Needs scripts/setup-bridge.sh. With --scale-at K the CPU pool goes 1 -> 2 after window K
and back to 1 two windows later, so the table shows a real scale-up and scale-down.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.backend import make_local_backend  # noqa: E402
from bridge.triton_metrics import scrape  # noqa: E402
from kisim.core.backend import Action, PoolSetting  # noqa: E402
from kisim.core.config import POOLS, load_scenario, override  # noqa: E402

KEYS = (
    "nv_inference_request_success",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_queue_duration_us",
)


def snapshot(b) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    """Counters of every replica now; stopped replicas keep their last (final) reading."""
    snap = {k: dict(v) for k, v in b.actuator.final_counters.items()}
    for p in POOLS:
        for name, _, met in b.actuator.replicas(p):
            try:
                snap[name] = scrape(met)
            except Exception:  # noqa: BLE001 - a replica stopping right now
                pass
    return snap


def total(snap: dict[str, dict[str, float]], key: str) -> float:
    return sum(s.get(key, 0.0) for s in snap.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--users", type=float, default=20.0)
    ap.add_argument("--scrape", type=float, default=1.0)
    ap.add_argument("--scale-at", type=int, default=-1)
    ap.add_argument("--keep", type=Path, default=None, help="keep logs and records here")
    a = ap.parse_args()
    sc = override(
        load_scenario(ROOT / "configs" / "scenarios" / "default.yaml"),
        "bridge-local-episode",
        **{
            "controller.name": "static",
            "window_s": a.window,
            "duration_s": a.window * a.windows,
            "metrics.scrape_interval_s": a.scrape,
            "metrics.rate_window_s": a.window,
            "traffic.pattern": {"name": "constant", "params": {"level": a.users}},
            "pools.gpu.replicas": 1,
            "pools.cpu.replicas": 1,
            "pools.cpu.max_replicas": 2,
        },
    )
    t = time.time()
    with make_local_backend(a.keep) as b:
        b.reset(sc, 0)
        print(f"# reset (replicas ready + load started): {time.time() - t:.1f} s")
        prev = snapshot(b)
        head = "t_end off  served triton_ok  batch(W/T)  wait_ms(W/T)  cpu_util gpu/cpu rdy  rep_s"
        print(head)
        for k in range(a.windows):
            if a.scale_at >= 0 and k in (a.scale_at + 1, a.scale_at + 3):
                n = 2 if k == a.scale_at + 1 else 1
                b.apply(Action(pools={"cpu": PoolSetting(replicas=n)}))
            w = b.advance(a.window)
            cur = snapshot(b)
            d = {key: total(cur, key) - total(prev, key) for key in KEYS}
            prev = cur
            tb = d["nv_inference_count"] / max(d["nv_inference_exec_count"], 1)
            ok = d["nv_inference_request_success"]
            tw = d["nv_inference_queue_duration_us"] / max(ok, 1)
            print(
                f"{w.t_end:5.0f} {w.offered:4d} {w.served:7d} {ok:9.0f}"
                f"  {w.mean_batch_size:4.2f}/{tb:4.2f}  {w.queue_wait_ms:6.2f}/{tw / 1000:6.2f}"
                f"  {w.cpu_util:8.3f}    {w.gpu_ready}/{w.cpu_ready}"
                f"  {w.gpu_replica_s + w.cpu_replica_s:5.1f}"
            )
        print(
            f"# p50/p95/p99 of the last window: {w.latency_p50_ms:.1f}/{w.latency_p95_ms:.1f}/"
            f"{w.latency_p99_ms:.1f} ms; errors {sum(x.errors for x in b.windows)}"
        )
        for e in b.actuator.events():
            print(f"# {e.t_unix - b.t0_unix:7.2f} s  {e.replica:6s} {e.kind:10s} {e.detail}")
    print(f"# total wall time incl. clean-up: {time.time() - t:.1f} s")


if __name__ == "__main__":
    main()

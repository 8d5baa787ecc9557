"""One point of `kisim bench scale`, run in its own process so its peak RSS is its own.

``python -m bench.scale_point REPLICAS NODES RATE DURATION_S MODE SEED`` runs the scale
scenario (`scale_scenario`) and prints one JSON line: requests served, the wall and CPU
seconds of the episode alone (`run_windows`, reset and summary included). The parent times
the whole process (interpreter start, imports, numba cache load, scenario validation) and
reads its peak RSS from `os.wait4`.
"""

from __future__ import annotations

import json
import os
import sys
import time

from kisim.core.config import Scenario, load_scenario, override
from kisim.core.paths import default_scenario

GPU_SHARE = 10
"""One replica in ten is a GPU replica (the 100-node check: 100 GPU + 900 CPU)."""


def scale_scenario(replicas: int, nodes: int, rate: float, duration_s: float,
                   latency_stats: str = "sketch") -> Scenario:  # fmt: skip
    """The default scenario's devices at scale: `replicas` (one in ten on the RTX 3080
    with batching up to 16 / 2 ms, the rest 1-core desktop-CPU replicas batching up to
    4 / 1 ms, as in the 100-node check) on `nodes` identical nodes (16 cores, 64 GiB, and
    enough GPUs for the GPU replicas), open-loop Poisson arrivals at `rate` req/s, static."""
    n_gpu = max(replicas // GPU_SHARE, 1)
    n_cpu = replicas - n_gpu
    gpus_per_node = -(-n_gpu // nodes)
    per_node_cpu = -(-n_cpu // nodes) + 2 * gpus_per_node
    return override(load_scenario(default_scenario()), "bench scale", **{
        "name": f"scale-{replicas}r-{nodes}n",
        "duration_s": duration_s,
        "traffic": {"mode": "open", "pattern": {"name": "constant", "params": {"level": rate}}},
        "pools.gpu": {"device": "rtx3080", "replicas": n_gpu, "min_replicas": 0,
                      "max_replicas": n_gpu, "resources": {"cpu": 2, "memory_gib": 4, "gpu": 1},
                      "batching": {"enabled": True, "max_batch_size": 16,
                                   "max_queue_delay_us": 2000}, "instances": 1},
        "pools.cpu": {"device": "desktop-cpu", "replicas": n_cpu, "min_replicas": 0,
                      "max_replicas": n_cpu, "resources": {"cpu": 1, "memory_gib": 2},
                      "batching": {"enabled": True, "max_batch_size": 4,
                                   "max_queue_delay_us": 1000}, "instances": 1},
        "cluster.nodes": [{"name": "node", "count": nodes, "cpu": max(16, per_node_cpu),
                           "memory_gib": max(64, 4 * per_node_cpu), "gpus": gpus_per_node,
                           "gpu_sharing": 1}],
        "controller.name": "static",
        "metrics.latency_stats": latency_stats,
    })  # fmt: skip


def run_point(replicas: int, nodes: int, rate: float, duration_s: float, mode: str,
              seed: int) -> dict[str, float]:  # fmt: skip
    """Run the point in this process: requests served, wall and CPU seconds of the episode."""
    from kisim.env.episode import run_windows, twin_backend

    sc = scale_scenario(replicas, nodes, rate, duration_s, mode)
    c0, t0 = time.process_time(), time.perf_counter()
    ep = run_windows(twin_backend(), sc, seed)
    t1 = time.perf_counter()
    ready = sum(w.ready_total for w in ep.windows[-1:])
    return {"served": float(ep.summary["served"]), "episode_wall_s": t1 - t0,
            "episode_cpu_s": time.process_time() - c0, "ready_replicas": float(ready),
            "p95_ms": float(ep.summary["p95_ms"])}  # fmt: skip


def main(argv: list[str]) -> int:
    replicas, nodes, rate, duration, mode, seed = argv
    out = run_point(int(replicas), int(nodes), float(rate), float(duration), mode, int(seed))
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: its time is no part of a run


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

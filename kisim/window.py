"""The `Window`: what one `Backend.advance(dt)` reports, identical for twin and cluster.

Latency figures come from the load generator's per-request records (what Locust
sees); utilisation and replica figures come from what Prometheus would show at
the end of the window (scrape interval, ``rate()`` range), never a privileged view.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np


@dataclass(frozen=True, slots=True)
class Window:
    """Metrics of one span of time [t_start, t_end). Times in s, latencies in ms."""

    t_start: float
    t_end: float
    load_level: float  # pattern level at t_end: users (closed loop) or req/s (open loop)
    offered: int  # requests sent in the window
    served: int  # requests answered successfully in the window
    errors: int  # requests that failed (no ready endpoint, queue full)
    throughput_rps: float  # served / duration
    latency_mean_ms: float  # of requests completed in the window; NaN if none
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    queue_wait_ms: float  # mean time in Triton's queue of completed requests
    slo_violations: int  # completed requests slower than the SLO, plus errors
    cpu_util: float  # mean over ready pods: rate(container_cpu_usage_seconds_total) / cpu request
    mem_util: float  # mean over ready pods: working set / memory limit
    gpu_util: float  # mean over GPUs with a ready pod: DCGM_FI_DEV_GPU_UTIL / 100
    gpu_desired: int
    gpu_ready: int
    gpu_pending: int
    cpu_desired: int
    cpu_ready: int
    cpu_pending: int
    gpu_replica_s: float  # pod-seconds bound to a node in the GPU pool (cost)
    cpu_replica_s: float
    pending_pod_s: float  # pod-seconds spent Pending (unschedulable) in either pool
    queue_length: int  # requests queued at t_end, all replicas
    mean_batch_size: float  # items per executed batch; NaN if no batch ran
    placement: str  # routing placement in force at t_end

    @property
    def duration(self) -> float:
        return self.t_end - self.t_start

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def percentiles_ms(latencies_s: list[float] | np.ndarray) -> tuple[float, float, float, float]:
    """(mean, p50, p95, p99) in ms, NaN when empty; numpy's default (linear) quantiles."""
    if len(latencies_s) == 0:
        return (math.nan,) * 4
    a = np.asarray(latencies_s, dtype=float) * 1000.0
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return float(a.mean()), float(p50), float(p95), float(p99)

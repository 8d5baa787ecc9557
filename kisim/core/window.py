"""The `Window`: what one `Backend.advance(dt)` reports, identical for twin and cluster.

Latency figures come from the load generator's per-request records (what Locust
sees); utilisation and replica figures come from what Prometheus would show at
the end of the window (scrape interval, ``rate()`` range), never a privileged view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import numpy as np


class PoolReplicas(NamedTuple):
    """Replica counts of one pool at a window's end, as kube-state-metrics reports them."""

    desired: int
    ready: int
    pending: int


class Utilisation(NamedTuple):
    """Mean CPU, memory and GPU utilisation at a window's end, as Prometheus shows it."""

    cpu: float
    mem: float
    gpu: float


class Latencies(NamedTuple):
    """Latency figures of the requests completed in a window, ms (NaN when none)."""

    mean: float
    p50: float
    p95: float
    p99: float


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

    @classmethod
    def measured(
        cls,
        *,
        t_start: float,
        t_end: float,
        load_level: float,
        offered: int,
        served: int,
        errors: int,
        latency_ms: Latencies,
        slow: int,
        queue_wait_ms: float,
        util: Utilisation,
        replicas: Mapping[str, PoolReplicas],
        replica_s: Mapping[str, float],
        pending_pod_s: float,
        queue_length: int,
        mean_batch_size: float,
        placement: str,
    ) -> Window:
        """The Window of [t_start, t_end) from what a backend measured in it.

        `slow` counts completed requests over the SLO (errors are added to make
        `slo_violations`); `replicas` and `replica_s` are keyed by pool (``gpu``, ``cpu``).
        Throughput is served over the window's duration.
        """
        dur = t_end - t_start
        gpu, cpu = replicas["gpu"], replicas["cpu"]
        return cls(
            t_start=t_start,
            t_end=t_end,
            load_level=load_level,
            offered=offered,
            served=served,
            errors=errors,
            throughput_rps=served / dur if dur > 0 else math.nan,
            latency_mean_ms=latency_ms.mean,
            latency_p50_ms=latency_ms.p50,
            latency_p95_ms=latency_ms.p95,
            latency_p99_ms=latency_ms.p99,
            queue_wait_ms=queue_wait_ms,
            slo_violations=slow + errors,
            cpu_util=util.cpu,
            mem_util=util.mem,
            gpu_util=util.gpu,
            gpu_desired=gpu.desired,
            gpu_ready=gpu.ready,
            gpu_pending=gpu.pending,
            cpu_desired=cpu.desired,
            cpu_ready=cpu.ready,
            cpu_pending=cpu.pending,
            gpu_replica_s=replica_s["gpu"],
            cpu_replica_s=replica_s["cpu"],
            pending_pod_s=pending_pod_s,
            queue_length=queue_length,
            mean_batch_size=mean_batch_size,
            placement=placement,
        )


def percentiles_ms(latencies_s: list[float] | np.ndarray) -> Latencies:
    """(mean, p50, p95, p99) in ms, NaN when empty; numpy's default (linear) quantiles."""
    if len(latencies_s) == 0:
        return Latencies(math.nan, math.nan, math.nan, math.nan)
    a = np.asarray(latencies_s, dtype=float) * 1000.0
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return Latencies(float(a.mean()), float(p50), float(p95), float(p99))

"""The `Window`: what one `Backend.advance(dt)` reports, identical for twin and cluster.

Latency figures come from the load generator's per-request records (what Locust
sees); utilisation and replica figures come from what Prometheus would show at
the end of the window (scrape interval, ``rate()`` range), never a privileged view.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np

from kisim.core.records import LatencyRecords, parts_percentiles


class PoolReplicas(NamedTuple):
    """Replica counts of one pool at a window's end, as kube-state-metrics reports them."""

    desired: int
    ready: int
    pending: int


class PoolRecord(NamedTuple):
    """One pool in one Window: replica counts at the window's end, the pod-seconds bound
    to a node during the window (Pending pods hold no node), and what they cost in money
    (`kisim.core.prices`; NaN from a backend that was given no prices)."""

    desired: int
    ready: int
    pending: int
    replica_s: float
    cost: float = math.nan


POOL_COUNT_FIELDS: tuple[str, ...] = PoolReplicas._fields
"""Per-pool columns written right after the utilisations, pool by pool."""
POOL_COST_FIELDS: tuple[str, ...] = ("replica_s", "cost")
"""Per-pool columns written after every pool's counts."""
_POOL_SUFFIXES: tuple[tuple[str, str], ...] = tuple(
    ("_" + f, f) for f in (*POOL_COUNT_FIELDS, *POOL_COST_FIELDS)
)


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
    """Metrics of one span of time [t_start, t_end). Times in s, latencies in ms.

    Pools are records keyed by the scenario's pool names (`pools`, GPU pools first as
    `Scenario.pool_names` orders them). Flat, each pool is the columns
    ``<pool>_desired``, ``<pool>_ready``, ``<pool>_pending``, ``<pool>_replica_s`` and
    ``<pool>_cost`` (`as_dict`, `columns`), and every such column is also an attribute
    (``w.gpu_desired`` is ``w.pool("gpu").desired``).
    """

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
    pools: Mapping[str, PoolRecord]  # by pool name: desired/ready/pending at t_end, replica-s
    pending_pod_s: float  # pod-seconds spent Pending (unschedulable) in any pool
    queue_length: int  # requests queued at t_end, all replicas
    mean_batch_size: float  # items per executed batch; NaN if no batch ran
    placement: str  # routing placement in force at t_end

    @property
    def duration(self) -> float:
        return self.t_end - self.t_start

    # ------------------------------------------------------------------ pools

    def pool(self, name: str) -> PoolRecord:
        """The record of pool `name` (KeyError naming the pools when there is none)."""
        try:
            return self.pools[name]
        except KeyError:
            known = ", ".join(self.pools)
            raise KeyError(f"no pool '{name}' in this window (pools: {known})") from None

    @property
    def pool_names(self) -> tuple[str, ...]:
        return tuple(self.pools)

    @property
    def desired_total(self) -> int:
        return sum(r.desired for r in self.pools.values())

    @property
    def ready_total(self) -> int:
        return sum(r.ready for r in self.pools.values())

    @property
    def pending_total(self) -> int:
        return sum(r.pending for r in self.pools.values())

    @property
    def replica_s_total(self) -> float:
        return sum(r.replica_s for r in self.pools.values())

    @property
    def cost_total(self) -> float:
        """Money of every pool's pods in the window (NaN when a pool has no price)."""
        return sum(r.cost for r in self.pools.values())

    def __getattr__(self, name: str) -> float | int:
        """``<pool>_<field>`` columns as attributes (``w.cpu_replica_s``)."""
        if not name.startswith("_") and name != "pools":
            for suffix, f in _POOL_SUFFIXES:
                if name.endswith(suffix):
                    rec = self.pools.get(name[: -len(suffix)])
                    if rec is not None:
                        return getattr(rec, f)  # type: ignore[no-any-return]
        raise AttributeError(f"'Window' object has no attribute '{name}'")

    # ------------------------------------------------------------------ flat form

    def as_dict(self) -> dict[str, float | int | str]:
        """One flat row: the pool records become ``<pool>_<field>`` columns (`columns`)."""
        out: dict[str, float | int | str] = {}
        for f in fields(self):
            if f.name == "pools":
                for name, rec in self.pools.items():
                    for k in POOL_COUNT_FIELDS:
                        out[f"{name}_{k}"] = getattr(rec, k)
                for name, rec in self.pools.items():
                    for k in POOL_COST_FIELDS:
                        out[f"{name}_{k}"] = getattr(rec, k)
            else:
                out[f.name] = getattr(self, f.name)
        return out

    @classmethod
    def columns(cls, pools: Iterable[str]) -> list[str]:
        """The flat columns of a Window over `pools` (the order `as_dict` writes)."""
        names = list(pools)
        out: list[str] = []
        for f in fields(cls):
            if f.name == "pools":
                out += [f"{p}_{k}" for p in names for k in POOL_COUNT_FIELDS]
                out += [f"{p}_{k}" for p in names for k in POOL_COST_FIELDS]
            else:
                out.append(f.name)
        return out

    @staticmethod
    def pools_of_columns(cols: Iterable[str]) -> list[str]:
        """Pool names present in flat columns (those with a ``<pool>_desired`` column)."""
        return [c[: -len("_desired")] for c in cols if c.endswith("_desired")]

    @classmethod
    def from_dict(cls, row: Mapping[str, float | int | str]) -> Window:
        """The Window of one flat row (`as_dict`'s inverse; pools found by `pools_of_columns`)."""
        names = cls.pools_of_columns(row)
        pools = {p: PoolRecord(int(row[f"{p}_desired"]), int(row[f"{p}_ready"]),
                               int(row[f"{p}_pending"]), float(row[f"{p}_replica_s"]),
                               float(row.get(f"{p}_cost", math.nan)))  # older rows: no cost
                 for p in names}  # fmt: skip
        kw = {f.name: row[f.name] for f in fields(cls) if f.name != "pools"}
        return cls(pools=pools, **kw)  # type: ignore[arg-type]

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
        price_per_hour: Mapping[str, float] | None = None,
    ) -> Window:
        """The Window of [t_start, t_end) from what a backend measured in it.

        `slow` counts completed requests over the SLO (errors are added to make
        `slo_violations`); `replicas` and `replica_s` are keyed by pool name, and the
        Window's pools are those of `replicas`, in its order. Throughput is served over
        the window's duration. A pool's cost is its replica-seconds at `price_per_hour`
        (one pod-hour, `kisim.core.prices.pool_rates`); NaN for a pool it does not price.
        """
        rates = price_per_hour or {}
        dur = t_end - t_start
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
            pools={p: PoolRecord(r.desired, r.ready, r.pending, replica_s[p],
                                 replica_s[p] * rates[p] / 3600.0 if p in rates else math.nan)
                   for p, r in replicas.items()},  # fmt: skip
            pending_pod_s=pending_pod_s,
            queue_length=queue_length,
            mean_batch_size=mean_batch_size,
            placement=placement,
        )


def percentiles_ms(latencies_s: list[float] | np.ndarray) -> Latencies:
    """(mean, p50, p95, p99) in ms, NaN when empty; numpy's default (linear) quantiles
    (from the sorted parts of `LatencyRecords`: the same numbers, no partition of them all)."""
    if len(latencies_s) == 0:
        return Latencies(math.nan, math.nan, math.nan, math.nan)
    a = np.asarray(latencies_s, dtype=float) * 1000.0
    parts = latencies_s.sorted_parts() if isinstance(latencies_s, LatencyRecords) else None
    if parts is not None:
        p50, p95, p99 = parts_percentiles(parts, (50, 95, 99), 1000.0)
    else:
        p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return Latencies(float(a.mean()), float(p50), float(p95), float(p99))

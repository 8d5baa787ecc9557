"""Run summary: one flat record per episode, identical for twin and cluster.

Latency percentiles are over every request of the run (not an average of window
percentiles): exact from every request's latency, or — from a streaming backend (the
twin's `metrics.latency_stats: sketch`, and `auto` on large runs) — from the run's merged
`LatencySketch`, within its stated relative error (0.5 %); the SLO counts stay exact (the
windows count them). Utilisations are time-weighted means of the windows' Prometheus view.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from kisim.core.records import LatencyRecords, parts_histogram
from kisim.core.sketch import LatencySketch
from kisim.core.window import Latencies, Window, percentiles_ms


def summary_keys(pools: Sequence[str]) -> tuple[str, ...]:
    """The summary's keys for runs over `pools`, in the order `summarize` writes them:
    per pool ``<pool>_replica_s`` and ``<pool>_ready_mean``; then money and SLO attainment
    (`MONEY_KEYS`, per pool ``<pool>_cost``)."""
    return (
        "p50_ms", "p95_ms", "p99_ms", "mean_ms", "mean_wait_ms", "throughput_rps",
        "success_rate", "slo_violation_rate", *(f"{p}_replica_s" for p in pools),
        "mean_batch_size", "offered", "served", "errors", "cpu_util", "mem_util", "gpu_util",
        *(f"{p}_ready_mean" for p in pools), "pending_pod_s", "scaling_actions", "duration_s",
        *money_keys(pools),
    )  # fmt: skip


def money_keys(pools: Sequence[str]) -> tuple[str, ...]:
    """The keys added with money: SLO attainment (per request, per window), the cost of every
    pool, the total and the cost per million served requests."""
    return ("slo_attainment", "p95_attainment", *(f"{p}_cost" for p in pools), "cost",
            "cost_per_million")  # fmt: skip


SUMMARY_KEYS: tuple[str, ...] = summary_keys(("gpu", "cpu"))
"""The keys of a run over the seed layout's two pools (``gpu``, ``cpu``)."""


def pools_of(summary: Mapping[str, object]) -> list[str]:
    """The pools a summary reports (those with a ``<pool>_replica_s`` key), in its order."""
    return [k[: -len("_replica_s")] for k in summary if k.endswith("_replica_s")]


def replica_s_total(summary: Mapping[str, float]) -> float:
    """Replica-seconds over every pool of a summary."""
    return sum(float(summary[f"{p}_replica_s"]) for p in pools_of(summary))


LATENCY_BINS_MS: np.ndarray = np.geomspace(0.1, 1e5, 241)
"""Log-spaced histogram edges (0.1 ms .. 100 s, 40 bins a decade) for latency CDFs."""


def latency_histogram(latencies_s: np.ndarray | LatencySketch) -> dict[str, list[float]]:
    """Counts per `LATENCY_BINS_MS` bin; runs store this instead of every request. From a
    sketch each bucket counts at its representative value (within 0.5 % of its members,
    so a request lands at most one bin off, next to a bin edge)."""
    parts = latencies_s.sorted_parts() if isinstance(latencies_s, LatencyRecords) else None
    if isinstance(latencies_s, LatencySketch):
        counts = latencies_s.histogram(LATENCY_BINS_MS * 1e-3)
    elif parts is not None:  # the same counts, from the sorted parts
        counts = parts_histogram(parts, LATENCY_BINS_MS, 1000.0)
    else:
        counts, _ = np.histogram(np.asarray(latencies_s) * 1000.0, bins=LATENCY_BINS_MS)
    return {"edges_ms": LATENCY_BINS_MS.tolist(), "counts": counts.tolist()}


def _latencies_ms(latencies_s: np.ndarray | LatencySketch) -> Latencies:
    if not isinstance(latencies_s, LatencySketch):
        return percentiles_ms(latencies_s)
    if len(latencies_s) == 0:
        return Latencies(math.nan, math.nan, math.nan, math.nan)
    p50, p95, p99 = latencies_s.quantiles((0.5, 0.95, 0.99))
    return Latencies(latencies_s.mean() * 1e3, p50 * 1e3, p95 * 1e3, p99 * 1e3)


def _mean_wait_ms(waits_s: np.ndarray | LatencySketch) -> float:
    if isinstance(waits_s, LatencySketch):
        return waits_s.mean() * 1000.0
    return float(np.mean(waits_s) * 1000.0) if len(waits_s) else math.nan


def _twmean(windows: Sequence[Window], attr: str) -> float:
    vals = [(v, w.duration) for w in windows if not math.isnan(v := getattr(w, attr))]
    total = sum(d for _, d in vals)
    return sum(v * d for v, d in vals) / total if total > 0 else math.nan


def _twmean_ready(windows: Sequence[Window], pool: str) -> float:
    """`_twmean` of ``<pool>_ready``, read from the pool records (no attribute lookup)."""
    vals = [(float(w.pools[pool].ready), w.duration) for w in windows]
    total = sum(d for _, d in vals)
    return sum(v * d for v, d in vals) / total if total > 0 else math.nan


def summarize(
    windows: Sequence[Window],
    latencies_s: np.ndarray | LatencySketch,
    waits_s: np.ndarray | LatencySketch,
    batch_items: int,
    batches: int,
    slo_ms: float,
) -> dict[str, float]:
    """Summary of a run from its windows and its per-request records (arrays, or sketches:
    then requests over the SLO are the windows' exact counts)."""
    offered = sum(w.offered for w in windows)
    served = sum(w.served for w in windows)
    errors = sum(w.errors for w in windows)
    duration = windows[-1].t_end - windows[0].t_start if windows else 0.0
    mean, p50, p95, p99 = _latencies_ms(latencies_s)
    answered = served + errors
    if isinstance(latencies_s, LatencySketch):
        slow = sum(w.slo_violations - w.errors for w in windows)
    else:
        slow = int(np.count_nonzero(np.asarray(latencies_s) * 1000.0 > slo_ms))
    pools = list(windows[0].pools) if windows else []
    actions = 0
    for a, b in itertools.pairwise(windows):
        actions += sum(a.pools[p].desired != b.pools[p].desired for p in pools)
    out: dict[str, float] = {
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "mean_ms": mean,
        "mean_wait_ms": _mean_wait_ms(waits_s),
        "throughput_rps": served / duration if duration > 0 else math.nan,
        "success_rate": served / answered if answered else math.nan,
        "slo_violation_rate": (slow + errors) / answered if answered else math.nan,
    }
    for p in pools:
        out[f"{p}_replica_s"] = sum(w.pools[p].replica_s for w in windows)
    out |= {
        "mean_batch_size": batch_items / batches if batches else math.nan,
        "offered": float(offered),
        "served": float(served),
        "errors": float(errors),
        "cpu_util": _twmean(windows, "cpu_util"),
        "mem_util": _twmean(windows, "mem_util"),
        "gpu_util": _twmean(windows, "gpu_util"),
    }
    for p in pools:
        out[f"{p}_ready_mean"] = _twmean_ready(windows, p)
    out |= {
        "pending_pod_s": sum(w.pending_pod_s for w in windows),
        "scaling_actions": float(actions),
        "duration_s": duration,
    }
    out["slo_attainment"] = 1.0 - out["slo_violation_rate"]
    out["p95_attainment"] = p95_attainment(windows, slo_ms)
    for p in pools:
        out[f"{p}_cost"] = sum(w.pools[p].cost for w in windows)
    out["cost"] = sum(out[f"{p}_cost"] for p in pools)
    out["cost_per_million"] = out["cost"] / served * 1e6 if served else math.nan
    return out


def p95_attainment(windows: Sequence[Window], target_ms: float) -> float:
    """Share of windows whose p95 latency meets `target_ms` (the SLO), failed requests
    counting as infinitely slow: a window meets it when p95 <= target and at most 5 % of its
    answered requests failed. A window in which requests were offered, failed or queued but
    none completed misses it; a window with no load at all is left out (NaN if all are)."""
    met = n = 0
    for w in windows:
        p95 = w.latency_p95_ms
        if p95 != p95:
            if w.offered > 0 or w.errors > 0 or w.queue_length > 0:
                n += 1
            continue
        n += 1
        met += p95 <= target_ms and w.errors <= 0.05 * (w.served + w.errors)
    return met / n if n else math.nan

"""CPU seconds per request and resident memory, from cAdvisor's container series."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from calibration.bundle import Bundle
from calibration.estimate import Estimate, block_indices, interval
from calibration.in_load import batch_variance, busy_pmf


def fit_cpu_per_request(
    bundles: list[tuple[Bundle, str]],
    kind: str,
    slope_ms: Any,
    rng: np.random.Generator,
    n_boot: int,
) -> Estimate | None:
    """CPU core-seconds per request beyond the compute itself (front end, (de)serialisation).

    The twin charges cores x execution time per batch (CPU devices) plus this per item;
    over 10 s bins: cpu_s - cores x busy_s = cpu_per_request x items (least squares, >= 0).
    Busy time (the sum of batch times) comes from Triton's request-weighted compute time,
    which overstates it when batch sizes spread: the central guess of `batch_variance` is
    taken off, and bins with mean batch <= 1.02 are preferred when there are five.
    """
    xs: list[float] = []
    ys: list[float] = []
    bb: list[float] = []
    for bun, pool in bundles:
        cpu = bun.prom.of("container_cpu_usage_seconds_total", pool)
        if not cpu:
            continue
        ct = bun.counters[pool]
        pcfg = bun.manifest.pools[pool]
        cores, n_inst = pcfg.resources.cpu, pcfg.instances
        bmax = pcfg.batching.max_batch_size if pcfg.batching.enabled else 1
        a, z = bun.manifest.start_unix_s, bun.manifest.end_unix_s
        edges = np.arange(a, z + 10.0, 10.0)
        busy = np.zeros(len(edges) - 1)
        items = np.zeros(len(edges) - 1)
        execs = np.zeros(len(edges) - 1)
        used = np.zeros(len(edges) - 1)
        for r, t in enumerate(ct.t):
            k = np.searchsorted(edges, t, side="left") - 1
            ok = (k >= 0) & (k < len(busy))
            n = ct.inc["nv_inference_count"][r]
            e = ct.inc["nv_inference_exec_count"][r]
            c = ct.inc["nv_inference_compute_infer_duration_us"][r]
            bb_ = n / np.maximum(e, 1)
            vmid, _ = batch_variance(bb_, np.full_like(bb_, bmax))
            spread = slope_ms(bb_) * vmid / np.maximum(bb_, 1)  # request-weighting excess, ms
            b = np.where(n > 0, (c * 1e-3 / np.maximum(n, 1) - spread) * e * 1e-3, 0.0)
            np.add.at(busy, k[ok], b[ok])
            np.add.at(items, k[ok], n[ok])
            np.add.at(execs, k[ok], e[ok])
        for s in cpu:
            if len(s.t) < 2:
                continue
            inc = np.diff(s.v)
            inc[inc < 0] = s.v[1:][inc < 0]
            k = np.searchsorted(edges, s.t[1:], side="left") - 1
            ok = (k >= 0) & (k < len(used))
            np.add.at(used, k[ok], inc[ok])
        # the twin charges cores / m per executing batch (m busy instances share the cores)
        inv_m = busy_pmf(n_inst, (busy / 10.0 / n_inst).clip(0, 1)) @ (
            1.0 / np.arange(1, n_inst + 1)
        )
        y = used - (cores * busy * inv_m if kind == "cpu" else 0.0)
        xs += items.tolist()
        ys += y.tolist()
        bb += (items / np.maximum(execs, 1)).tolist()
    if not xs:
        return None
    x, y = np.asarray(xs), np.asarray(ys)
    single = np.asarray(bb) <= 1.02  # busy time is exact only without batch-size spread
    if np.count_nonzero(single & (x > 0)) >= 5:
        x, y = x[single], y[single]

    def slope(idx: np.ndarray) -> float:
        den = float(np.sum(x[idx] ** 2))
        return max(float(np.sum(x[idx] * y[idx])) / den, 0.0) * 1e3 if den > 0 else math.nan

    idx = np.arange(len(x))
    return interval(
        np.array([slope(block_indices(len(x), rng)) for _ in range(n_boot)]),
        slope(idx),
        len(x),
        "LS of (CPU seconds - cores x busy) on items, 10 s bins",
    )


def fit_memory_base(bundles: list[tuple[Bundle, str]]) -> Estimate | None:
    vals = [
        s.v
        for bun, pool in bundles
        for s in bun.prom.of("container_memory_working_set_bytes", pool)
        if len(s.v)
    ]
    if not vals:
        return None
    v = np.concatenate(vals) / 2**30
    return Estimate(
        float(np.percentile(v, 10)),
        float(v.min()),
        float(np.median(v)),
        len(v),
        "10th percentile of the working set (range: min..median)",
    )

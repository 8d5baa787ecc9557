"""`validate(cal, bundles)`: replay each bundle in the twin over many seeds and compare.

Per window (``window_s`` long, from the bundle's start) and per bundle as a whole:
throughput, latency p50/p95/p99, mean queue wait, mean batch size and success rate. The
real side is read the way the bridge's `Window` is built: requests by their client-side
completion time (``requests.csv``), queue wait and batch size from Triton's counters
(increments whose sample time falls in the window). The twin side is the mean over
seeds of the same window's figure.

Errors are absolute percentage errors |twin - real| / real, averaged (MAPE) over the
windows where the real figure exists and at least `min_requests` requests completed
(latency percentiles: that many on both sides; queue wait: the denominator is at least 1 ms,
as sub-millisecond waits are timer noise), overall and per utilisation band of the
real window (busy instance-time / available instance-time: < 50 %, 50-80 %, > 80 %).
`noise_floor` is the MAPE of one twin seed against the mean of the others: what even a
perfect model would show against a single recording of that length.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from calibration.bundle import Bundle
from calibration.replay import scenario_for
from kisim.core.config import Calibration

METRICS: tuple[str, ...] = (
    "throughput_rps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "queue_wait_ms",
    "batch_size",
    "success_rate",
)
HEADLINE: dict[str, str] = {
    "throughput_rps": "throughput_mape",
    "p50_ms": "p50_mape",
    "p95_ms": "p95_mape",
    "p99_ms": "p99_mape",
    "batch_size": "batch_size_mape",
    "queue_wait_ms": "queue_wait_mape",
    "success_rate": "success_rate_mape",
}
BANDS: tuple[tuple[str, float, float], ...] = (
    ("<50%", 0.0, 0.5),
    ("50-80%", 0.5, 0.8),
    (">80%", 0.8, math.inf),
)
LATENCY = ("p50_ms", "p95_ms", "p99_ms")
FLOOR = {"queue_wait_ms": 1.0}


@dataclass
class BundleValidation:
    name: str
    t_start: np.ndarray  # window starts, s from the bundle's start
    t_end: np.ndarray
    real: dict[str, np.ndarray]
    twin: dict[str, np.ndarray]  # seeds x windows
    util: np.ndarray
    n_real: np.ndarray  # successful completions per window
    overall_real: dict[str, float]
    overall_twin: dict[str, np.ndarray]  # per seed
    ape: dict[str, np.ndarray] = field(default_factory=dict)  # per window (NaN = not compared)
    # signed relative error (twin - real) / real per window: > 0 the twin is slow (latency) or
    # serves more (throughput); NaN where `ape` is
    sre: dict[str, np.ndarray] = field(default_factory=dict)

    def twin_mean(self, m: str) -> np.ndarray:
        with _no_seed_served():
            return np.nanmean(self.twin[m], axis=0) if self.twin[m].size else self.twin[m]

    def seed_range(self, m: str) -> tuple[np.ndarray, np.ndarray]:
        """Per window, the lowest and highest seed's value (NaN where no seed served)."""
        with _no_seed_served():
            return np.nanmin(self.twin[m], axis=0), np.nanmax(self.twin[m], axis=0)


@contextmanager
def _no_seed_served() -> Iterator[None]:
    """A window no twin seed served is all NaN: it stays NaN (blank), without numpy's
    empty-slice warnings."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@dataclass
class ValidationResult:
    config: str
    seeds: int
    window_s: float
    bundles: list[BundleValidation]
    held_in: list[str]  # bundles the calibration was fitted on (not held out)
    # new recordings of an experiment the calibration was fitted on (held-out recordings,
    # not held-out experiments)
    repeats_of_fit: list[str] = field(default_factory=list)
    reproducibility: dict[str, Any] | None = None  # calibration.reproducibility
    experiments: list[Any] = field(default_factory=list)  # its MeanReferences, for figures

    def summary(self) -> dict[str, Any]:
        """The JSON document of `kisim validate --json` (errors as fractions)."""
        out: dict[str, Any] = {
            "config": self.config,
            "seeds": self.seeds,
            "window_s": self.window_s,
        }
        out.update(mape_table(self.bundles))
        out["bias"] = {
            "all": _biases(self.bundles),
            **{name: _biases(self.bundles, (lo, hi)) for name, lo, hi in BANDS},
        }
        out["overall_ape"] = _overall(self.bundles)
        out["noise_floor"] = {HEADLINE[m]: _noise_floor(self.bundles, m) for m in METRICS}
        out.update(self.reproducibility or {})
        out["held_in"] = self.held_in
        out["repeats_of_fit"] = self.repeats_of_fit
        out["per_bundle"] = {
            b.name: {
                **_mapes([b]),
                "bias": _biases([b]),
                "overall_ape": _overall([b]),
                "windows": len(b.t_start),
                "mean_util": float(np.nanmean(b.util)) if len(b.util) else math.nan,
            }
            for b in self.bundles
        }
        return out


class Compared(Protocol):
    """Per-window errors and the reference's utilisation (a validation or a recording pair)."""

    ape: dict[str, np.ndarray]
    util: np.ndarray


def _widths(b: Compared) -> np.ndarray:
    """Each window's duration (a trailing partial window weighs by its length)."""
    t0, t1 = getattr(b, "t_start", None), getattr(b, "t_end", None)
    if t0 is None or t1 is None or len(t0) != len(b.util):
        return np.ones(len(b.util))
    return np.asarray(t1, float) - np.asarray(t0, float)


def _weighted(items: Sequence[Compared], get: Any, band: tuple[float, float] | None) -> float:
    vals, ws = [], []
    for b in items:
        a, w = get(b), _widths(b)
        keep = np.isfinite(a)
        if band is not None:
            keep &= (b.util >= band[0]) & (b.util < band[1])
        vals.append(a[keep])
        ws.append(w[keep])
    v = np.concatenate(vals) if vals else np.empty(0)
    w = np.concatenate(ws) if ws else np.empty(0)
    return float(np.sum(v * w) / np.sum(w)) if len(v) and np.sum(w) > 0 else math.nan


def _mapes(items: Sequence[Compared], band: tuple[float, float] | None = None) -> dict[str, float]:
    """MAPE per metric, windows weighted by their duration."""
    return {HEADLINE[m]: _weighted(items, lambda b, m=m: b.ape[m], band) for m in METRICS}


def _biases(items: Sequence[Any], band: tuple[float, float] | None = None) -> dict[str, float]:
    """Mean signed relative error (twin - real) / real per metric: latency > 0 = the twin is
    too slow, throughput < 0 = it serves too little (duration-weighted)."""
    return {
        m: _weighted(items, lambda b, m=m: b.sre[m], band)
        for m in METRICS
        if all(m in getattr(b, "sre", {}) for b in items)
    }


def mape_table(items: Sequence[Compared]) -> dict[str, Any]:
    """MAPE per headline metric over all windows, and per utilisation band (with counts)."""
    return {
        **_mapes(items),
        "bands": {
            name: {
                **_mapes(items, (lo, hi)),
                "windows": int(
                    sum(np.count_nonzero((b.util >= lo) & (b.util < hi)) for b in items)
                ),
            }
            for name, lo, hi in BANDS
        },
    }


def _overall(bundles: list[BundleValidation]) -> dict[str, float]:
    out = {}
    for m in METRICS:
        e = []
        for b in bundles:
            r, t = b.overall_real[m], float(np.nanmean(b.overall_twin[m]))
            if math.isfinite(r) and math.isfinite(t) and max(abs(r), FLOOR.get(m, 0.0)) > 0:
                e.append(abs(t - r) / max(abs(r), FLOOR.get(m, 0.0)))
        out[HEADLINE[m]] = float(np.mean(e)) if e else math.nan
    return out


def _noise_floor(bundles: list[BundleValidation], m: str) -> float:
    errs = []
    for b in bundles:
        tw = b.twin[m]
        n = tw.shape[0]
        if n < 3:
            continue
        valid = np.isfinite(b.ape[m])
        for s in range(n):
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # windows no seed served
                others = np.nanmean(np.delete(tw, s, axis=0), axis=0)
                den = np.maximum(np.abs(others), FLOOR.get(m, 0.0))
                e = np.abs(tw[s] - others) / den
            errs.append(e[valid & np.isfinite(e)])
    v = np.concatenate(errs) if errs else np.empty(0)
    return float(v.mean()) if len(v) else math.nan


def window_ape(
    pred: dict[str, np.ndarray],
    ref: dict[str, np.ndarray],
    n_pred: np.ndarray,
    n_ref: np.ndarray,
    min_requests: int,
) -> dict[str, np.ndarray]:
    """|pred - ref| / ref per window and metric; NaN where the window is not compared.

    A window counts when the reference completed at least `min_requests` requests (not the
    drain after the schedule's end); latency percentiles need that many on both sides.
    """
    enough = (n_ref >= min_requests) & (n_pred >= min_requests)
    out = {}
    for x in METRICS:
        r, t = ref[x], pred[x]
        with np.errstate(all="ignore"):
            den = np.maximum(np.abs(r), FLOOR.get(x, 0.0))
            a = np.abs(t - r) / den
        a[~np.isfinite(r) | ~np.isfinite(t) | (den == 0)] = math.nan
        if x in LATENCY:
            a[~enough] = math.nan
        a[n_ref < min_requests] = math.nan
        out[x] = a
    return out


def window_sre(
    pred: dict[str, np.ndarray], ref: dict[str, np.ndarray], ape: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """(pred - ref) / ref per window, where `ape` compares the window (else NaN)."""
    out = {}
    for x in METRICS:
        with np.errstate(all="ignore"):
            den = np.maximum(np.abs(ref[x]), FLOOR.get(x, 0.0))
            e = (pred[x] - ref[x]) / den
        e[~np.isfinite(ape[x])] = math.nan
        out[x] = e
    return out


# (window edges, per-window figures, utilisation, completions, whole-run figures)
WindowFigures = tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray, dict[str, float]]


def real_windows(bun: Bundle, window_s: float) -> WindowFigures:
    """(window edges in s from the start, per-window figures, utilisation, completions, overall)."""
    m = bun.manifest
    dur = m.duration_s
    n_w = int(math.ceil(dur / window_s - 1e-9))
    edges = np.minimum(np.arange(n_w + 1) * window_s, dur)
    req = bun.requests
    done = req.done - m.start_unix_s
    k = np.searchsorted(edges, done, side="right") - 1
    inw = (k >= 0) & (k < n_w)
    real = {x: np.full(n_w, math.nan) for x in METRICS}
    n_ok = np.zeros(n_w)
    lat_ok = req.latency_ms[inw & req.ok]
    k_ok = k[inw & req.ok]
    k_fail = k[inw & ~req.ok]
    n_ok = np.bincount(k_ok, minlength=n_w).astype(float)
    n_fail = np.bincount(k_fail, minlength=n_w).astype(float)
    order = np.argsort(k_ok, kind="stable")
    cuts = np.searchsorted(k_ok[order], np.arange(n_w + 1))
    lat_sorted = lat_ok[order]
    width = np.diff(edges)
    for w in range(n_w):
        x = lat_sorted[cuts[w] : cuts[w + 1]]
        real["throughput_rps"][w] = n_ok[w] / width[w]
        if len(x):
            real["p50_ms"][w], real["p95_ms"][w], real["p99_ms"][w] = np.percentile(x, [50, 95, 99])
        if n_ok[w] + n_fail[w] > 0:
            real["success_rate"][w] = n_ok[w] / (n_ok[w] + n_fail[w])
    busy = np.zeros(n_w)
    cap = 0.0
    items = np.zeros(n_w)
    execs = np.zeros(n_w)
    queue = np.zeros(n_w)
    for pool, ct in bun.counters.items():
        cap += m.pools[pool].instances * len(ct.replicas)
        for r, t in enumerate(ct.t):
            kk = np.searchsorted(edges, t - m.start_unix_s, side="left") - 1  # (a, b]
            ok = (kk >= 0) & (kk < n_w)
            n = ct.inc["nv_inference_count"][r]
            e = ct.inc["nv_inference_exec_count"][r]
            c = ct.inc["nv_inference_compute_infer_duration_us"][r]
            q = ct.inc["nv_inference_queue_duration_us"][r]
            np.add.at(items, kk[ok], n[ok])
            np.add.at(execs, kk[ok], e[ok])
            np.add.at(queue, kk[ok], q[ok])
            np.add.at(busy, kk[ok], np.where(n > 0, c * 1e-6 * e / np.maximum(n, 1), 0.0)[ok])
    with np.errstate(all="ignore"):
        real["queue_wait_ms"] = np.where(items > 0, queue / np.maximum(items, 1) / 1e3, math.nan)
        real["batch_size"] = np.where(execs > 0, items / np.maximum(execs, 1), math.nan)
        # busy time can spill over a window edge (a batch counted when its scrape lands):
        # the instances cannot be busier than their capacity
        util = np.minimum(busy / (width * max(cap, 1.0)), 1.0)
    all_ok = req.latency_ms[req.ok]
    tot_items = sum(ct.total("nv_inference_count") for ct in bun.counters.values())
    tot_exec = sum(ct.total("nv_inference_exec_count") for ct in bun.counters.values())
    tot_q = sum(ct.total("nv_inference_queue_duration_us") for ct in bun.counters.values())
    p50, p95, p99 = np.percentile(all_ok, [50, 95, 99]) if len(all_ok) else (math.nan,) * 3
    overall = {
        "throughput_rps": float(np.count_nonzero(inw & req.ok)) / dur,
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "queue_wait_ms": tot_q / tot_items / 1e3 if tot_items else math.nan,
        "batch_size": tot_items / tot_exec if tot_exec else math.nan,
        "success_rate": float(req.ok.mean()) if len(req) else math.nan,
    }
    return edges, real, util, n_ok, overall


def validate(
    cal: Calibration,
    bundles: list[Bundle],
    seeds: int = 5,
    window_s: float = 15.0,
    min_requests: int = 20,
    device_map: dict[str, str] | None = None,
    config: str = "",
    progress: Any = None,
) -> ValidationResult:
    from kisim.env.episode import run_windows, twin_backend

    held_in: list[str] = []
    fitted_on = _provenance_list(cal, "fitted-on")
    fitted_experiments = _provenance_list(cal, "fitted-experiments")
    out: list[BundleValidation] = []
    names = [b.name for b in bundles]
    repeats_of_fit: list[str] = []
    for bun in bundles:
        if bun.name in fitted_on:
            held_in.append(bun.name)
        elif bun.experiment_id in fitted_experiments:
            repeats_of_fit.append(bun.name)
        sc = scenario_for(bun, cal, window_s, device_map)
        edges, real, util, n_ok, overall = real_windows(bun, window_s)
        n_w = len(edges) - 1
        twin = {x: np.full((seeds, n_w), math.nan) for x in METRICS}
        served = np.zeros((seeds, n_w))
        o_twin = {x: np.full(seeds, math.nan) for x in METRICS}
        for s in range(seeds):
            ep = run_windows(twin_backend(), sc, s)
            for w, win in enumerate(ep.windows[:n_w]):
                twin["throughput_rps"][s, w] = win.throughput_rps
                twin["p50_ms"][s, w] = win.latency_p50_ms
                twin["p95_ms"][s, w] = win.latency_p95_ms
                twin["p99_ms"][s, w] = win.latency_p99_ms
                twin["queue_wait_ms"][s, w] = win.queue_wait_ms
                twin["batch_size"][s, w] = win.mean_batch_size
                ans = win.served + win.errors
                twin["success_rate"][s, w] = win.served / ans if ans else math.nan
                served[s, w] = win.served
            sm = ep.summary
            for x, key in (
                ("throughput_rps", "throughput_rps"),
                ("p50_ms", "p50_ms"),
                ("p95_ms", "p95_ms"),
                ("p99_ms", "p99_ms"),
                ("queue_wait_ms", "mean_wait_ms"),
                ("batch_size", "mean_batch_size"),
                ("success_rate", "success_rate"),
            ):
                o_twin[x][s] = sm[key]
            if progress is not None:
                progress()
        label = bun.name if names.count(bun.name) == 1 else bun.path.name  # a name used twice
        bv = BundleValidation(label, edges[:-1], edges[1:], real, twin, util, n_ok, overall, o_twin)
        pred = {x: bv.twin_mean(x) for x in METRICS}
        bv.ape = window_ape(pred, real, served.mean(axis=0), n_ok, min_requests)
        bv.sre = window_sre(pred, real, bv.ape)
        out.append(bv)
    return ValidationResult(config, seeds, window_s, out, held_in, repeats_of_fit)


def _provenance_list(cal: Calibration, key: str) -> set[str]:
    """The comma-separated values of a ``key: a, b`` line of the calibration's provenance."""
    line = next((ln for ln in cal.provenance.splitlines() if ln.startswith(f"{key}:")), "")
    return {x.strip() for x in line.partition(":")[2].split(",") if x.strip()}

"""Execution time that depends on the pacing: the twin's `idle_slowdown` / `idle_tau_ms`.

A batch of one on a 1-thread ONNX Runtime instance took 7.4 ms isolated and 7.4-8.2 ms back
to back (zero think time, `traces/cpu-b4-1t-sweep`) but 8.5-9.7 ms at light load with
0.2-0.6 s think times (`traces/cpu1-*-step`, docs/calibration.md): an instance that waited
for its next request runs it slower (caches and the runtime's threads cool). One in-load
factor k fitted at light load then also slows the back-to-back batches of another stack.

The twin multiplies an execution that starts on an idle replica by
1 + g (1 - exp(-gap / tau)), gap = time since its last execution ended. Here g, tau and the
back-to-back level k0 are fitted from Triton's counters of lone instances, batches of one
(the chunks k uses), against each chunk's mean warmth W(tau) = mean(1 - exp(-gap / tau))
over its requests, the gaps read from `requests.csv`:

    log(compute per request / curve(1)) = log k0 + log(1 + g W(tau)),

by weighted least squares (g on a grid, k0 in closed form, tau profiled), intervals by the
moving-block bootstrap of the chunks. A request's gap: its client send time minus the latest
client completion of the replica's earlier requests, plus the overhead (the response left
the server that much before the client saw it, the request reaches it that much after it was
sent) and, when batching, the batcher's delay (an idle instance waits that long for a
partner). Exact for one instance per replica, which the chunks used here have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from calibration.bundle import Bundle
from calibration.estimate import Estimate, block_indices, fixed, interval
from calibration.host_load import overlaps, saturated_spans
from calibration.in_load import Chunks
from calibration.service_curve import CurveFit

TAU_GRID_MS = (5.0, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 500.0)
G_GRID = np.linspace(0.0, 2.0, 401)  # slow-down of a fully idle replica, step 0.005
MIN_EFFECT = 0.02  # applied only if g's interval excludes 0 and g >= 2 % (as k: K_MIN_EFFECT)
MIN_CHUNKS = 10


@dataclass
class IdleGapFit:
    """The pacing term: g (`idle_slowdown`), tau (`idle_tau_ms`), k0 (the back-to-back level)."""

    slowdown: Estimate
    tau_ms: Estimate
    k_warm: Estimate
    applied: bool
    chunks: int
    warmth: np.ndarray = field(default_factory=lambda: np.empty(0))  # per chunk, at tau
    ratio: np.ndarray = field(default_factory=lambda: np.empty(0))  # per chunk: c / curve(1)
    notes: list[str] = field(default_factory=list)


def request_gaps_ms(start: np.ndarray, done: np.ndarray, lead_ms: float) -> np.ndarray:
    """Per request (in the order given), the idle time of its one-instance replica before it
    ran: send time - the latest completion of the requests sent before it + `lead_ms`
    (overhead and batcher delay), 0 when that is negative (busy or queued)."""
    order = np.argsort(start, kind="stable")
    s, d = start[order], done[order]
    prev = np.maximum.accumulate(np.concatenate([[-np.inf], d[:-1]]))
    gap = np.maximum((s - prev) * 1e3 + lead_ms, 0.0)
    gap[~np.isfinite(gap)] = np.inf  # a replica's first request: idle since ever
    out = np.empty_like(gap)
    out[order] = gap
    return out


def chunk_gaps(
    ch: Chunks, bundles: dict[str, Bundle], pool: dict[str, str], overhead_ms: float
) -> list[np.ndarray]:
    """The gaps (ms) of the requests each chunk counted: its replica's successful requests
    whose client completion falls in the chunk's span."""
    cache: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    out: list[np.ndarray] = []
    for i in range(len(ch)):
        key = (str(ch.bundle[i]), str(ch.replica[i]))
        if key not in cache:
            bun = bundles[key[0]]
            req = bun.requests
            m = (req.replica == key[1]) & (req.pool == pool[key[0]]) & req.ok
            cfg = bun.manifest.pools[pool[key[0]]]
            delay = cfg.batching.max_queue_delay_us / 1e3 if cfg.batching.enabled else 0.0
            cache[key] = (req.done[m], request_gaps_ms(req.start[m], req.done[m],
                                                       overhead_ms + delay))  # fmt: skip
        done, gaps = cache[key]
        sel = (done > ch.t_end[i] - ch.dt[i]) & (done <= ch.t_end[i])
        out.append(gaps[sel])
    return out


def saturated_chunks(ch: Chunks, bundles: dict[str, Bundle]) -> np.ndarray:
    """Chunks that share time with a second in which the recording host had no spare core
    (`calibration.host_load`): executions there also wait for a core."""
    hot = np.zeros(len(ch), dtype=bool)
    for name, bun in bundles.items():
        m = ch.bundle == name
        if m.any():
            hot[m] = overlaps(ch.t_end[m] - ch.dt[m], ch.t_end[m], saturated_spans(bun))
    return hot


def warmth(gaps: list[np.ndarray], tau_ms: float) -> np.ndarray:
    """Per chunk, mean over its requests of 1 - exp(-gap / tau) (0: all back to back)."""
    return np.array([float(np.mean(-np.expm1(-g / tau_ms))) if len(g) else math.nan
                     for g in gaps])  # fmt: skip


def _solve(y: np.ndarray, w: np.ndarray, wm: np.ndarray) -> tuple[float, int, float]:
    """Best (g, tau index, log k0) by weighted least squares; wm: warmth per (tau, chunk)."""
    best = (math.inf, 0.0, 0, 0.0)
    tw = float(w.sum())
    for j in range(wm.shape[0]):
        pred = np.log1p(G_GRID[:, None] * wm[j][None, :])  # (g, chunk)
        c = ((y[None, :] - pred) * w[None, :]).sum(axis=1) / tw
        ssr = (w[None, :] * (y[None, :] - pred - c[:, None]) ** 2).sum(axis=1)
        i = int(np.argmin(ssr))
        if ssr[i] < best[0] - 1e-12:
            best = (float(ssr[i]), float(G_GRID[i]), j, float(c[i]))
    return best[1], best[2], best[3]


def fit_idle_gap(
    ratio: np.ndarray, execs: np.ndarray, gaps: list[np.ndarray], cv: float,
    rng: np.random.Generator, n_boot: int,
) -> IdleGapFit:  # fmt: skip
    """g, tau and k0 from per-chunk ratios (compute per request / curve(1), batches of one)
    and the chunks' request gaps; weights: the service noise of each chunk's mean
    (cv^2 / execs). Applied when g's 95 % interval excludes 0 and g >= `MIN_EFFECT`."""
    wm = np.array([warmth(gaps, t) for t in TAU_GRID_MS])
    ok = np.isfinite(ratio) & (ratio > 0) & np.all(np.isfinite(wm), axis=0)
    y, w, wm = np.log(ratio[ok]), 1.0 / (cv * cv / execs[ok] + 1e-6), wm[:, ok]
    n = len(y)
    if n < MIN_CHUNKS or float(np.ptp(wm[len(TAU_GRID_MS) // 2])) < 0.1:
        why = (f"{n} chunk(s) of batches of one" if n < MIN_CHUNKS
               else "the chunks' pacing barely varies")  # fmt: skip
        return IdleGapFit(fixed(0.0, "not identified"), fixed(TAU_GRID_MS[4], "not identified"),
                          fixed(math.nan, "not identified"), False, n,
                          notes=[f"idle_slowdown not identifiable ({why}): 0"])  # fmt: skip
    g, j, c = _solve(y, w, wm)
    boots = []
    for _ in range(n_boot):
        idx = block_indices(n, rng)
        bg, bj, bc = _solve(y[idx], w[idx], wm[:, idx])
        boots.append((bg, TAU_GRID_MS[bj], math.exp(bc)))
    b = np.array(boots)
    how = "WLS of log(counters / curve) on the chunks' warmth, tau profiled; block bootstrap"
    slow = interval(b[:, 0], g, n, how)
    tau = interval(b[:, 1], TAU_GRID_MS[j], n, how)
    k0 = interval(b[:, 2], math.exp(c), n, how)
    # at the grid's largest tau the slow-down still grows over every gap seen: its time
    # constant (and with it g) is not identified, whatever g's interval says
    edge = j == len(TAU_GRID_MS) - 1
    applied = math.isfinite(slow.lo) and slow.lo > 0 and g >= MIN_EFFECT and not edge
    note = (f"executions after an idle gap run slower: x (1 + {g:.3f} (1 - exp(-gap / "
            f"{TAU_GRID_MS[j]:g} ms))), 95% CI of the slow-down {slow.lo:.3f}..{slow.hi:.3f}; "
            f"back to back the counters are {math.exp(c):.3f} x the curve")  # fmt: skip
    why = (f"tau at the grid's end ({TAU_GRID_MS[-1]:g} ms): not identified" if edge
           else "CI spans 0 or < 2 %")  # fmt: skip
    notes = [note + (" (applied)" if applied else f" (not applied: {why})")]
    return IdleGapFit(slow, tau, k0, applied, n, wm[j], np.exp(y), notes)


def fit_pacing(
    group: list[tuple[Bundle, str]], chunks: Chunks, ref_cores: float, kind: str,
    curve: CurveFit, cv: float, overhead_ms: float, rng: np.random.Generator, n_boot: int,
) -> IdleGapFit:  # fmt: skip
    """`fit_idle_gap` on the chunks k uses (lone instances, at the reference cores on CPUs,
    batches of one request: `calibration.in_load.fit_in_load`), leaving out those on a host
    without a spare core."""
    bundles = {bun.name: bun for bun, _ in group}
    pool = {bun.name: p for bun, p in group}
    alone = (chunks.instances == 1) & ((chunks.cores == ref_cores) if kind == "cpu" else True)
    one = alone & (chunks.bbar <= 1 + 1e-9)
    ch = chunks.select(one & ~saturated_chunks(chunks, bundles))
    gaps = chunk_gaps(ch, bundles, pool, overhead_ms)
    t1 = float(curve.time_ms(np.array([1.0]))[0])
    return fit_idle_gap(ch.per_request_ms / t1, ch.execs, gaps, cv, rng, n_boot)

"""Execution time after an idle gap (`idle_slowdown`, `idle_tau_ms`; `calibration.idle_gap`):
0 leaves the twin exactly as it was, the twin applies it only to executions that start on an
idle replica, and the fit recovers a known slow-down from a closed loop's chunks and gaps."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest
from synthetic_truth import true_scenario

from calibration.idle_gap import fit_idle_gap, request_gaps_ms
from kisim.core.config import Scenario, override, resolved_json
from kisim.env.episode import run_windows, twin_backend


def _p50s(sc: Scenario) -> np.ndarray:
    return np.array([w.latency_p50_ms for w in run_windows(twin_backend(), sc, 0).windows])


def _compute_per_request_ms(sc: Scenario) -> float:
    """Triton's compute_infer / count in the twin (request-weighted execution time)."""
    be = twin_backend()
    be.reset(sc, 0)
    be.advance(sc.duration_s)
    reps = be.dp.replicas
    return sum(r.compute_s_sum for r in reps) / sum(r.n_success for r in reps) * 1e3


def test_zero_slowdown_leaves_the_twin_unchanged() -> None:
    sc = true_scenario(users=[5, 60], step_s=30.0)
    same = override(sc, "test", **{"calibration.devices.cpu.idle_slowdown": 0.0,
                                   "calibration.devices.cpu.idle_tau_ms": 7.0})  # fmt: skip
    assert np.array_equal(_p50s(sc), _p50s(same))


def test_without_the_term_a_scenario_fingerprints_as_before_it_existed() -> None:
    # resolved_json is the benchmark's fingerprint: stored runs stay reusable
    sc = true_scenario(users=[5], step_s=30.0)
    assert "idle_slowdown" not in resolved_json(sc) and "idle_tau_ms" not in resolved_json(sc)
    on = override(sc, "test", **{"calibration.devices.cpu.idle_slowdown": 0.2})
    assert '"idle_slowdown": 0.2' in resolved_json(on) and "idle_tau_ms" in resolved_json(on)


def _off(users: int) -> Scenario:
    return true_scenario(users=[users], step_s=120.0, batching={"enabled": False})


def test_idle_executions_slow_down_back_to_back_ones_do_not() -> None:
    g = {"calibration.devices.cpu.idle_slowdown": 0.4, "calibration.devices.cpu.idle_tau_ms": 20.0}
    # 4 users, 0.5-1.5 s think time, ~4 % utilisation: nearly every execution starts on a
    # replica idle >> 20 ms (x 1.4), the few that queue start back to back (x 1); the same
    # seed draws the same noise, so the ratio is 1 + 0.4 x (idle share 0.9..1)
    ratio = _compute_per_request_ms(override(_off(4), "test", **g)) / _compute_per_request_ms(
        _off(4)
    )
    assert 1.36 <= ratio <= 1.4 + 1e-9
    # 300 users want ~300 req/s of a ~110 req/s replica: nearly every execution starts
    # back to back (the queue is never empty), so the mean stays near 9 ms
    base = _compute_per_request_ms(_off(300))
    busy = _compute_per_request_ms(override(_off(300), "test", **g))
    assert busy < base * 1.01


def _closed_loop(g: float, tau_ms: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """One FIFO instance (batch of one, 8 ms x (1 + g (1 - exp(-gap / tau))) x lognormal
    noise cv 0.1), closed-loop users 0.2-0.6 s apart, 2 / 6 / 12 / 40 users for 60 s each,
    0.4-0.6 ms each way between client and server. Returns per request (client send, client
    done, server end, execution ms)."""
    sig = math.sqrt(math.log(1 + 0.1**2))
    rows = []
    t0 = 0.0
    free, last_end = 0.0, -math.inf
    for users in (2, 6, 12, 40):
        heap = [(t0 + rng.uniform(0, 0.6), u) for u in range(users)]
        heapq.heapify(heap)
        while heap:
            send, u = heapq.heappop(heap)
            arrive = send + rng.uniform(0.4e-3, 0.6e-3)
            gap = (arrive - last_end) * 1e3 if arrive >= free else 0.0
            start = max(arrive, free)
            ex = 8.0 * (1 + g * -math.expm1(-gap / tau_ms)) * rng.lognormal(-(sig**2) / 2, sig)
            free = last_end = start + ex * 1e-3
            done = free + rng.uniform(0.4e-3, 0.6e-3)
            rows.append((send, done, free, ex))
            nxt = done + rng.uniform(0.2, 0.6)
            if nxt < t0 + 60.0:
                heapq.heappush(heap, (nxt, u))
        t0 += 60.0
    return tuple(np.array(c) for c in zip(*rows, strict=True))


def _fit(g: float, seed: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    send, done, end, ex = _closed_loop(g, 50.0, rng)  # tau on the fit's grid
    gaps = request_gaps_ms(send, done, 1.0)
    bins = np.floor(end / 2.0)  # 2 s counter chunks
    keys = np.unique(bins)
    ratio = np.array([ex[bins == k].mean() / 8.0 for k in keys])
    execs = np.array([np.count_nonzero(bins == k) for k in keys], dtype=float)
    chunk_gaps = [gaps[bins == k] for k in keys]
    keep = execs >= 20
    return fit_idle_gap(ratio[keep], execs[keep], [c for c, k in zip(chunk_gaps, keep,
                        strict=True) if k], 0.1, rng, 100)  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1])
def test_a_known_slowdown_is_recovered_within_its_interval(seed: int) -> None:
    fit = _fit(0.3, seed)
    assert fit.applied, fit.notes
    assert fit.slowdown.contains(0.3), fit.slowdown
    # the back-to-back level shares the chunks with g and tau (tau on a grid): within 1 %
    assert fit.k_warm.value == pytest.approx(1.0, abs=0.01), fit.k_warm
    assert fit.tau_ms.contains(50.0), fit.tau_ms


def test_no_slowdown_is_not_applied() -> None:
    fit = _fit(0.0, 2)
    assert not fit.applied, fit.notes
    assert fit.slowdown.contains(0.0)


def test_a_time_constant_beyond_the_gaps_seen_is_not_applied() -> None:
    # tau 5 s >> every gap (means 0-400 ms): the slow-down grows linearly over all gaps seen,
    # the profile ends at the grid's largest tau, and g is not identified
    rng = np.random.default_rng(4)
    gaps = [rng.exponential(m, 40) for m in np.linspace(0.0, 400.0, 60)]
    ex = [8.0 * (1 - 1.0 * np.expm1(-g / 5000.0)) * rng.lognormal(0, 0.1, 40) for g in gaps]
    ratio = np.array([e.mean() / 8.0 for e in ex])
    fit = fit_idle_gap(ratio, np.full(60, 40.0), gaps, 0.1, rng, 60)
    assert fit.tau_ms.value == 500.0 and not fit.applied, fit.notes

"""Streaming latencies into the sketch moves no number by more than its stated error.

`metrics.latency_stats: sketch` replaces every request's latency by `LatencySketch`
buckets (`kisim.core.sketch`, relative accuracy ALPHA = 0.5 %); the default, `auto`, keeps
every latency up to 2 M estimated requests — every shipped scenario, so their numbers stay
those recorded before (tests/test_pools_bit_identical.py) — and streams beyond. Every
shipped scenario (the default, its patterns, three-pools and the benchmark suite, full
length, in-cluster controller) and policy runs through the env (static, hpa, threshold,
kpa on the default, three-pools and gpu-fleet) are run in both modes with the same seed:

* the runs are the same runs — counts, replicas, utilisations, SLO violations, costs,
  rewards' inputs other than latency: equal, float for float;
* latency quantiles (windows' and the summary's p50, p95, p99) within ALPHA, relative;
* means (latency, queue wait) within 1e-9 (exact sums, added in another order).

A policy that reads p95 (threshold, PPO) decides differently when a step's p95 lies within
0.5 % of one of its thresholds: the action sequences are compared too, and the one such
flip on these runs (threshold on the default: p95 200.6 ms exact vs 199.8 ms sketched at
2 x SLO, +2 replicas instead of +1) is marked as an expected failure. That is why `auto`
keeps short runs exact.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from agents.evaluation.policy_run import run_policy
from kisim.core.config import Scenario, load_scenario, override
from kisim.core.sketch import ALPHA, resolve_latency_stats
from kisim.env.episode import run_windows, twin_backend

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "configs" / "scenarios"
ALL = sorted(p.relative_to(SCENARIOS).as_posix()
             for p in [*SCENARIOS.glob("*.yaml"), *SCENARIOS.glob("patterns/*.yaml"),
                       *SCENARIOS.glob("suite/*.yaml")])  # fmt: skip
TOL = ALPHA * (1 + 1e-9)
QUANTILES = {"p50_ms", "p95_ms", "p99_ms", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"}
MEANS = {"mean_ms", "mean_wait_ms", "latency_mean_ms", "queue_wait_ms"}


def _mode(sc: Scenario, mode: str, **dotted: object) -> Scenario:
    return override(sc, "test", **{"metrics.latency_stats": mode, **dotted})


def _close(key: str, got: object, want: object) -> bool:
    if isinstance(got, float) and isinstance(want, float):
        if math.isnan(got) or math.isnan(want):
            return math.isnan(got) and math.isnan(want)
        if key in QUANTILES:
            return abs(got - want) <= TOL * abs(want)
        if key in MEANS:
            return got == pytest.approx(want, rel=1e-9)
    return got == want


def _assert_within(sketch: dict, exact: dict, where: str) -> None:
    assert set(sketch) == set(exact), where
    bad = {k: (sketch[k], exact[k]) for k in exact if not _close(k, sketch[k], exact[k])}
    assert not bad, (where, bad)


def _assert_runs(sk_windows, ex_windows, sk_summary, ex_summary, where: str) -> None:  # type: ignore[no-untyped-def]
    assert len(sk_windows) == len(ex_windows), where
    for i, (a, b) in enumerate(zip(sk_windows, ex_windows, strict=True)):
        _assert_within(a.as_dict(), b.as_dict(), f"{where} window {i}")
    _assert_within(dict(sk_summary), dict(ex_summary), f"{where} summary")


@pytest.mark.parametrize("rel", ALL)
def test_in_cluster_runs_within_the_sketch_error(rel: str) -> None:
    sc = load_scenario(SCENARIOS / rel)
    assert sc.metrics.latency_stats == "auto" and resolve_latency_stats(sc) == "exact"
    ex = run_windows(twin_backend(), _mode(sc, "exact"), 7)
    sk = run_windows(twin_backend(), _mode(sc, "sketch"), 7)
    assert ex.summary["served"] > 0
    _assert_runs(sk.windows, ex.windows, sk.summary, ex.summary, rel)


FLIP = pytest.mark.xfail(strict=True, reason="a step's p95 within 0.5 % of 2 x SLO")


POLICY_RUNS = [(rel, pol) for rel in ("default.yaml", "three-pools.yaml", "suite/gpu-fleet.yaml")
               for pol in ("static", "hpa", "threshold", "kpa")]  # fmt: skip


@pytest.mark.parametrize(("rel", "policy"), [
    pytest.param(rel, pol, marks=FLIP) if (rel, pol) == ("default.yaml", "threshold")
    else (rel, pol) for rel, pol in POLICY_RUNS
])  # fmt: skip
def test_policy_runs_within_the_sketch_error(rel: str, policy: str) -> None:
    sc = load_scenario(SCENARIOS / rel)
    short = {"duration_s": min(sc.duration_s, 300.0)}
    ex = run_policy(policy, _mode(sc, "exact", **short), 7)
    sk = run_policy(policy, _mode(sc, "sketch", **short), 7)
    where = f"{rel} {policy}"
    desired = [[w.pools[p].desired for p in w.pools] for w in ex.episode.windows]
    assert desired == [[w.pools[p].desired for p in w.pools] for w in sk.episode.windows], where
    _assert_runs(sk.episode.windows, ex.episode.windows, sk.episode.summary,
                 ex.episode.summary, where)  # fmt: skip
    # the reward reads p95 (latency terms): it moves with it, by no more than its share
    assert sk.reward == pytest.approx(ex.reward, rel=0.01, abs=1e-6), where

"""Named pools change no number: every shipped two-pool scenario gives the summaries, rewards and
timelines recorded on main before pools were named (``tests/data/summaries-before-pools.json``).

The recording ran each scenario in ``configs/scenarios`` (capped at 300 s) under static, hpa,
threshold and kpa (plus ``static-cpu:2`` on the default) with seed 7 through the evaluation's
`run_policy`, and under the in-cluster static and hpa controllers with seed 11 through
`run_windows`. Summaries must be equal float for float; a timeline is compared by the sha256 of
its Windows' ``as_dict()`` rows (``json.dumps(..., sort_keys=True)`` joined by newlines).

Money came later and only adds: summaries gain exactly `money_keys` (SLO attainment, cost per
pool, total, cost per million requests) and Windows the ``<pool>_cost`` columns. Everything
recorded is compared as before; the additions are checked to be exactly those keys, and to be
consistent with what was recorded (cost = replica-seconds x the pool's price).

The recording kept every request's latency: these runs use ``metrics.latency_stats: exact``
(the default streams them into a sketch; tests/twin/test_sketch_default.py bounds how far
that moves the same summaries).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from agents.evaluation.policy_run import run_policy
from kisim.core.config import load_scenario, override
from kisim.core.prices import pool_rates
from kisim.core.summary import money_keys, pools_of
from kisim.env.episode import run_windows, twin_backend

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "configs" / "scenarios"
GOLDEN = json.loads((Path(__file__).parent / "data" / "summaries-before-pools.json").read_text())


def _digest(windows) -> str:
    """The recorded digest: every column but the ``<pool>_cost`` ones money added."""
    rows = []
    for w in windows:
        row = w.as_dict()
        added = {f"{p}_cost" for p in w.pools}
        assert added <= set(row)
        rows.append(json.dumps({k: v for k, v in row.items() if k not in added}, sort_keys=True))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _same(a, b) -> bool:
    """Exact equality, NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _assert_summary(got: dict, want: dict) -> None:
    # JSON round-trip, as recorded (tuples become lists, NaN stays NaN)
    got = json.loads(json.dumps(got, allow_nan=True))
    added = set(money_keys(pools_of(want)))
    assert set(got) - set(want) == added and set(want) <= set(got)
    diff = {k: (got[k], want[k]) for k in want if not _same(got[k], want[k])}
    assert not diff, diff


@pytest.mark.parametrize("key", sorted(GOLDEN["policy_runs"]))
def test_policy_runs_bit_identical(key: str) -> None:
    rel, pol = key.split("|")
    sc = load_scenario(SCENARIOS / rel)
    sc = override(sc, "golden", **{"duration_s": min(sc.duration_s, 300.0),
                                   "metrics.latency_stats": "exact"})  # fmt: skip
    run = run_policy(pol, sc, 7)
    want = GOLDEN["policy_runs"][key]
    _assert_summary(dict(run.episode.summary), want["summary"])
    _assert_money(dict(run.episode.summary), run.scenario)
    assert _same(run.reward, want["reward"])
    assert _digest(run.episode.windows) == want["timeline_sha256"]


@pytest.mark.parametrize("key", sorted(GOLDEN["simulate"]))
def test_simulate_bit_identical(key: str) -> None:
    rel, pol = key.split("|")
    sc = override(load_scenario(SCENARIOS / rel), "golden",
                  **{"controller.name": pol, "duration_s": 300.0, "metrics.latency_stats": "exact"})
    ep = run_windows(twin_backend(), sc, 11)
    want = GOLDEN["simulate"][key]
    _assert_summary(dict(ep.summary), want["summary"])
    _assert_money(dict(ep.summary), sc)
    assert _digest(ep.windows) == want["timeline_sha256"]


def _assert_money(got: dict, sc) -> None:
    """The added keys agree with the recorded ones: cost = replica-seconds x price."""
    rates = pool_rates(sc)
    for p in pools_of(got):
        assert got[f"{p}_cost"] == pytest.approx(got[f"{p}_replica_s"] * rates[p] / 3600, rel=1e-9)
    assert got["slo_attainment"] == pytest.approx(1 - got["slo_violation_rate"])
    assert got["cost_per_million"] == pytest.approx(got["cost"] / got["served"] * 1e6)

"""Same scenario + seed -> the same run, byte for byte; another seed -> another run;
and requests are conserved: offered = served + errors + still in flight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kisim.core.config import Scenario, override
from kisim.core.sketch import LatencySketch
from kisim.env.episode import Episode, run_windows
from twin import kernel as K
from twin.backend import TwinBackend

ROOT = Path(__file__).resolve().parents[2]


def dumps(ep: Episode) -> tuple[str, str]:
    """The timeline and summary as a run directory would store them."""
    windows = json.dumps([w.as_dict() for w in ep.windows], sort_keys=True)
    summary = json.dumps(ep.summary, sort_keys=True, indent=2)
    return windows, summary


@pytest.fixture(scope="module")
def default_runs(default_scenario: Scenario) -> dict[str, tuple[Episode, TwinBackend]]:
    runs = {}
    for key, seed in (("a", 0), ("b", 0), ("other", 1)):
        b = TwinBackend()
        runs[key] = (run_windows(b, default_scenario, seed), b)
    return runs


def _records(b: TwinBackend) -> tuple[np.ndarray, ...]:
    """The run's latency and wait records: arrays (exact mode) or sketch counts and sums."""
    out: list[np.ndarray] = []
    for r in (b.latencies(), b.waits()):
        out += [r.counts, np.array([r.total_s])] if isinstance(r, LatencySketch) else [r]
    return tuple(out)


def test_same_seed_identical(default_runs) -> None:  # type: ignore[no-untyped-def]
    (ea, ba), (eb, bb) = default_runs["a"], default_runs["b"]
    assert dumps(ea) == dumps(eb)
    for x, y in zip(_records(ba), _records(bb), strict=True):
        assert np.array_equal(x, y)
    assert ea.summary["served"] > 10_000  # a real run, not an empty one


def _sketched(sc: Scenario) -> Scenario:
    return override(sc, "sketch", **{"metrics.latency_stats": "sketch"})


def test_sketch_mode_same_seed_identical(default_scenario: Scenario) -> None:
    """Streaming latencies keeps runs bit-identical per seed: timeline, summary, buckets."""
    sc = _sketched(default_scenario)
    (ea, ba), (eb, bb) = [(run_windows(b, sc, 0), b) for b in (TwinBackend(), TwinBackend())]
    assert isinstance(ba.latencies(), LatencySketch)
    assert dumps(ea) == dumps(eb)
    for x, y in zip(_records(ba), _records(bb), strict=True):
        assert np.array_equal(x, y)


def test_other_seed_differs(default_runs) -> None:  # type: ignore[no-untyped-def]
    ea, eo = default_runs["a"][0], default_runs["other"][0]
    assert dumps(ea)[1] != dumps(eo)[1]
    for key in ("mean_ms", "mean_wait_ms", "served"):
        assert ea.summary[key] != eo.summary[key], key
    # quantiles come from sketch buckets 1 % wide: two seeds may share one, not all three
    assert any(ea.summary[k] != eo.summary[k] for k in ("p50_ms", "p95_ms", "p99_ms"))


def test_reset_reuses_nothing(default_scenario: Scenario, default_runs) -> None:  # type: ignore[no-untyped-def]
    """A backend reset after another episode gives the fresh backend's run."""
    b = TwinBackend()
    run_windows(b, default_scenario, 1)
    again = run_windows(b, default_scenario, 0)
    assert dumps(again) == dumps(default_runs["a"][0])


def test_window_length_does_not_change_the_run(default_scenario: Scenario, default_runs) -> None:  # type: ignore[no-untyped-def]
    """Cutting windows only reads the state: 40 windows of 15 s, 600 windows of 1 s and
    one of 600 s see the same requests (every one compared: exact mode), and the streaming
    default counts the same latencies into the same buckets."""
    exact = override(default_scenario, "exact", **{"metrics.latency_stats": "exact"})
    ref = TwinBackend()
    run_windows(ref, exact, 0)
    streamed = TwinBackend()
    run_windows(streamed, _sketched(default_scenario), 0)
    sketch = streamed.latencies()
    assert isinstance(sketch, LatencySketch)
    for dt in (1.0, 600.0):
        b = TwinBackend()
        b.reset(exact, 0)
        ws = [b.advance(dt) for _ in range(round(600.0 / dt))]
        assert np.array_equal(b.latencies(), ref.latencies()), dt
        assert np.array_equal(LatencySketch.of(b.latencies()).counts, sketch.counts), dt
        assert sum(w.served for w in ws) == sum(w.served for w in default_runs["a"][0].windows)


@pytest.mark.parametrize("key", ["a", "other"])
def test_requests_are_conserved(default_runs, key) -> None:  # type: ignore[no-untyped-def]
    """offered = served + errors + in flight at the end (queued or executing)."""
    ep, b = default_runs[key]
    n = b.dp.n_slots
    in_flight = int(b.dp.ri[:n, K.QLEN].sum() + b.dp.ri[:n, K.INFL].sum())
    s = ep.summary
    assert s["offered"] == s["served"] + s["errors"] + in_flight
    assert sum(w.offered for w in ep.windows) == s["offered"]
    assert len(b.latencies()) == s["served"]
    # the closed loop stays closed: at most one request per user is outstanding
    assert in_flight <= ep.windows[-1].load_level + 1


_CHILD = """
import json, sys
from kisim.core.config import load_scenario
from kisim.env.episode import run_windows
from twin.backend import TwinBackend
sc = load_scenario(sys.argv[1], **{"duration_s": 300.0})
ep = run_windows(TwinBackend(), sc, 3)
print(json.dumps(ep.summary, sort_keys=True, indent=2))
"""


@pytest.mark.slow
def test_identical_across_processes() -> None:
    """Two interpreters with different hash seeds (set/dict order of str keys) write
    byte-identical summaries."""
    out = []
    for hashseed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        cmd = [sys.executable, "-c", _CHILD, str(ROOT / "configs" / "scenarios" / "default.yaml")]
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        out.append(r.stdout)
    assert out[0] == out[1]
    assert json.loads(out[0])["served"] > 0


def test_draw_buffer_widens_without_changing_a_number() -> None:
    """More draws at once than a block holds (100k users starting together) widen the buffer;
    the streams' values are the same however they are cut into blocks."""
    from kisim.core.config import load_scenario
    from twin.dataplane import BLOCK, DataPlane

    sc = load_scenario(ROOT / "configs" / "scenarios" / "default.yaml")
    n = 3 * BLOCK + 17
    one_by_one, at_once = DataPlane(sc, 5), DataPlane(sc, 5)
    a = []
    for _ in range(n):
        one_by_one._ensure_draws(1)
        a.append(K._draw(one_by_one.rnd, one_by_one.ridx, K.S_THINK))
    at_once._ensure_draws(n)
    b = [K._draw(at_once.rnd, at_once.ridx, K.S_THINK) for _ in range(n)]
    assert at_once.rnd.shape[1] >= n and a == b

"""Load patterns: the shapes their names promise, determinism, and CSV replay errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kisim.core.errors import ConfigError
from kisim.core.patterns import PATTERNS, make_pattern


def test_registry_has_the_seed_patterns_and_profiles() -> None:
    assert {"constant", "step", "ramp", "spike", "periodic", "random", "low", "high", "mixed",
            "replay"} <= set(PATTERNS)  # fmt: skip


def test_step_ramp_spike_shapes() -> None:
    step = make_pattern("step", {"levels": [10, 20, 50], "step_s": 60})
    assert [step.level(t) for t in (0, 59.9, 60, 125, 1e6)] == [10, 10, 20, 50, 50]
    ramp = make_pattern("ramp", {"start": 1, "peak": 50, "ramp_s": 300, "hold_s": 0})
    assert ramp.level(0) == 1 and ramp.level(150) == pytest.approx(25.5) and ramp.level(300) == 50
    assert ramp.level(600) == 1  # back down after another ramp_s
    spike = make_pattern("spike", {"base": 10, "peak": 100, "start_s": 100, "rise_s": 0,
                                   "hold_s": 30, "fall_s": 0})  # fmt: skip
    assert (spike.level(99), spike.level(100), spike.level(129), spike.level(131)) == (10, 100, 100, 10)


def test_periodic_has_its_period() -> None:
    p = make_pattern("periodic", {"base": 50, "amplitude": 20, "period_s": 100})
    assert p.level(25) == pytest.approx(70) and p.level(75) == pytest.approx(30)
    assert p.level(10) == pytest.approx(p.level(110))


def test_random_is_seeded() -> None:
    a, b = make_pattern("random", {}, seed=1), make_pattern("random", {}, seed=1)
    c = make_pattern("random", {}, seed=2)
    ts = range(0, 3000, 30)
    assert [a.level(t) for t in ts] == [b.level(t) for t in ts]
    assert [a.level(t) for t in ts] != [c.level(t) for t in ts]
    lo, hi = a.p.low, a.p.high  # type: ignore[attr-defined]
    assert all(lo <= a.level(t) <= hi for t in ts)


def test_replay_reads_csv_and_names_bad_rows(tmp_path: Path) -> None:
    f = tmp_path / "rate.csv"
    f.write_text("t_s,level\n0,5\n10,20\n")
    p = make_pattern("replay", {"csv": str(f)})
    assert (p.level(0), p.level(9.9), p.level(10), p.level(99)) == (5, 5, 20, 20)
    f.write_text("t_s,level\n0,5\n10,abc\n")
    with pytest.raises(ConfigError, match=r"rate.csv: line 3: column level"):
        make_pattern("replay", {"csv": str(f)})


def test_unknown_pattern() -> None:
    with pytest.raises(ConfigError, match="unknown pattern 'nope'"):
        make_pattern("nope")

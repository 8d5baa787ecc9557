"""scripts/miss-weighting.py: a policy that misses in its busy windows has a per-request miss
share above its per-window mean; one that misses evenly has the two equal."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from kisim.core.rundir import run_path, write_run

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("mw", ROOT / "scripts" / "miss-weighting.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(out: Path, policy: str, windows: list[tuple[int, int]]) -> None:
    rows = [{"t_start": 15.0 * i, "t_end": 15.0 * (i + 1), "served": s, "errors": 0,
             "slo_violations": v} for i, (s, v) in enumerate(windows)]  # fmt: skip
    write_run(run_path(out, policy, "schedule", 0), {}, rows,
              {"policy": policy, "pattern": "schedule", "seed": 0}, {})  # fmt: skip


def test_misses_in_busy_windows_weigh_more_per_request(tmp_path: Path, capsys) -> None:
    _run(tmp_path, "even", [(100, 5), (300, 15)])  # 5 % in each window
    _run(tmp_path, "bursty", [(100, 0), (300, 30)])  # none when quiet, 10 % when busy
    got = _script().shares(tmp_path)
    assert got["even"] == pytest.approx((0.05, 0.05, 1))
    assert got["bursty"] == pytest.approx((0.05, 30 / 400, 1))
    assert _script().main([str(tmp_path)]) == 0
    assert "| `bursty` | 5.00% | 7.50% | 1.50 | 1 |" in capsys.readouterr().out

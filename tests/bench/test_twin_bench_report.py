"""`kisim bench twin` states its target against wall time and against CPU time, with the
load average: a run starved of CPU by other work misses the wall target while its CPU
figure (what the twin does with a core to itself) meets it, and the report says both."""

from __future__ import annotations

import json
from typing import Any

import pytest

import bench.twin_bench as tb


def _fake(served: int, wall_s: float, cpu_s: float):  # type: ignore[no-untyped-def]
    def run(sc: Any, seed: int) -> dict[str, Any]:
        return {"seed": seed, "served": served, "wall_s": wall_s, "cpu_s": cpu_s,
                "requests_per_s": served / wall_s, "mean_ms": 33.0,
                "mean_batch_size": 1.5}  # fmt: skip

    return run


def test_starved_run_meets_the_cpu_target_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the twin: 30 k requests in 0.02 CPU s (1.5 M/CPU s) but 0.1 wall s (a fifth of a core)
    monkeypatch.setattr(tb, "_time_twin", _fake(30_000, 0.1, 0.02))
    monkeypatch.setattr(tb, "_time_reference", _fake(30_000, 2.0, 0.4))  # 75 k/CPU s
    out = tb.bench_twin(repeats=3, json_out=True)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line == json.loads(json.dumps(out))
    assert out["requests_per_s"] == pytest.approx(300_000)
    assert out["requests_per_cpu_s"] == pytest.approx(1_500_000)
    assert out["speedup_cpu"] == pytest.approx(20.0)
    assert out["cpu_share"] == pytest.approx(0.2)
    assert out["cpu_share_needed"] == pytest.approx(1 / 3)  # 500 k of 1.5 M per CPU s
    assert out["meets_target"] is False and out["meets_target_cpu"] is True
    assert len(out["loadavg"]) == 2
    table = tb._table(out)
    assert "meets target (wall): no; per CPU second: yes" in table
    assert "load average" in table
    assert "the wall target needs 0.33 at this CPU cost" in table


def test_slow_twin_misses_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tb, "_time_twin", _fake(30_000, 0.1, 0.1))  # 300 k/s, a full core
    monkeypatch.setattr(tb, "_time_reference", _fake(30_000, 2.0, 2.0))
    out = tb.bench_twin(repeats=1, json_out=True)
    assert out["meets_target"] is False and out["meets_target_cpu"] is False

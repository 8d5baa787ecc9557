"""`kisim record`'s sweep mode without a server: the schedule it makes, what it refuses, and
`write_sweep` on a bundle folder (the real-stack run is in test_record.py, marked server)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from bridge.record.recorder import write_sweep
from bridge.record.schedule import RecordSchedule, steps

ROOT = Path(__file__).resolve().parents[2]
SWEEP = {
    "apiVersion": "kisim/v1", "kind": "RecordSchedule", "name": "sweep",
    "pools": {"cpu": {"batching": {"enabled": True, "max_batch_size": 8,
                                   "max_queue_delay_us": 3000}}},
    "sweep": {"levels": [1, 2, 4, 8], "level_s": 20, "warmup_s": 5},
}  # fmt: skip


def test_a_sweep_is_a_stepwise_schedule_without_think_time() -> None:
    spec = RecordSchedule.model_validate(SWEEP)
    assert spec.duration_s == 80
    assert spec.traffic.wait_time_s == (0.0, 0.0)
    assert steps(spec) == [(0.0, 1), (20.0, 2), (40.0, 4), (60.0, 8), (80.0, 0)]


@pytest.mark.parametrize(
    ("change", "msg"),
    [
        ({"traffic": {"wait_time_s": [0.1, 0.2]}}, "wait_time_s must be"),
        ({"traffic": {"schedule": [{"t_s": 0, "users": 1}]}}, "not both"),
        ({"duration_s": 10}, "duration_s is len"),
        ({"sweep": {"levels": [2, 2]}}, "each level once"),
        ({"sweep": {"levels": [1], "level_s": 5, "warmup_s": 5}}, "warmup_s must be below"),
        ({"sweep": {"levels": [1], "mode": "request_rate"}}, "sweep.mode"),
    ],
)
def test_sweeps_it_refuses(change: dict, msg: str) -> None:  # type: ignore[type-arg]
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=msg):
        RecordSchedule.model_validate({**SWEEP, **change})


def test_two_pools_are_refused() -> None:
    from pydantic import ValidationError

    two = {**SWEEP, "pools": {**SWEEP["pools"], "gpu": SWEEP["pools"]["cpu"]}}
    with pytest.raises(ValidationError, match="exactly one pool"):
        RecordSchedule.model_validate(two)


def test_write_sweep_on_a_recorded_bundle(tmp_path: Path) -> None:
    """The columns come from the bundle's requests.csv and prometheus/ alone: here a real
    step recording (4 -> 12 -> 24 -> 48 users every 25 s) read as a four-level sweep."""
    from calibration.perf_run import load_perf_run

    b = tmp_path / "b"
    shutil.copytree(ROOT / "traces" / "cpu-off-step", b)
    man = yaml.safe_load((b / "manifest.yaml").read_text())
    spec = RecordSchedule.model_validate(
        {**SWEEP, "name": "cpu-off-step", "sweep": {"levels": [4, 12, 24, 48], "level_s": 25,
                                                    "warmup_s": 5}})  # fmt: skip
    d = write_sweep(b, spec, man["start_unix_s"])
    run = load_perf_run(d)
    assert [lv.level for lv in run.levels] == [4, 12, 24, 48]
    assert run.spec.pool.threads_per_instance == 2  # from recording.yaml
    assert run.spec.pool.batching.enabled is False
    for lv in run.levels:
        # Triton's compute per request on this host: 8-15 ms at batch 1
        assert 6.0 < lv.infer_ms < 16.0 and lv.input_ms < 1.0 and lv.output_ms < 1.0
        assert lv.p50_ms <= lv.p90_ms <= lv.p99_ms
    # more users, more throughput until the replica saturates
    tp = [lv.throughput_rps for lv in run.levels]
    assert tp[0] < tp[1] < tp[2]

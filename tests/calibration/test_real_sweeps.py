"""Issue 15 on real recordings of a differently configured stack (traces/README.md): the
local stack's concurrency sweeps (`kisim record`'s sweep mode, 2026-12-06) are calibrated
from and validated against end to end, as a bundle and through their perf_analyzer columns,
and a calibration fitted on the same day's step schedules transfers to them.

Thresholds are the figures docs/calibration.md reports with a margin for fewer seeds and
bootstrap draws (real data has no theory to derive them from): a regression guard, not a
promise about other recordings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calibration.bundle import load_bundle
from calibration.calibrate import calibrate
from calibration.perf_run import load_perf_run
from calibration.perf_validate import validate_perf
from calibration.validate import validate
from kisim.core.config import load_calibration

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "traces"
PRIOR = ROOT / "configs" / "calibration" / "rtx3080-desktop-cpu.yaml"  # `kisim calibrate`'s
SWEEP, OFF_SWEEP = TRACES / "cpu-b4-1t-sweep", TRACES / "cpu-off-sweep"
STEPS = [TRACES / n for n in ("cpu1-b8-step", "cpu1-b8-x3-step", "cpu1-off-step")]
pytestmark = pytest.mark.skipif(
    not all(p.is_dir() for p in [SWEEP, OFF_SWEEP, *STEPS]), reason="no traces/ bundles"
)


def test_a_recorded_sweep_is_calibrated_and_validated_end_to_end() -> None:
    res = calibrate([load_bundle(SWEEP)], "sweep", n_boot=60)
    d = res.devices["cpu"]
    # the batched sweep shows the responses of a batch leaving one after another
    assert d.overhead.per_position is not None and d.overhead.per_position.lo > 0
    assert 0.5 < d.device.overhead_per_batch_position_ms < 2.5
    assert 1.0 < d.device.overhead_ms < 2.5  # isolated requests: 1.76 ms client - queue - compute
    v = validate(res.calibration, [load_bundle(SWEEP)], seeds=3).summary()
    assert v["throughput_mape"] < 0.12 and v["p50_mape"] < 0.12 and v["batch_size_mape"] < 0.03
    pv = validate_perf(res.calibration, [load_perf_run(SWEEP / "perf")], seeds=3).summary()
    assert pv["throughput_rps_mape"] < 0.15 and pv["p50_ms_mape"] < 0.15


def test_an_unbatched_sweep_identifies_no_position_cost() -> None:
    res = calibrate([load_bundle(OFF_SWEEP)], "off", n_boot=60)
    assert res.devices["cpu"].device.overhead_per_batch_position_ms == 0.0


@pytest.mark.slow
def test_step_schedules_transfer_to_the_sweeps() -> None:
    prior = load_calibration(PRIOR)  # core scaling (2 threads) is the prior's 0.6
    res = calibrate([load_bundle(p) for p in STEPS], "cpu1", prior, str(PRIOR), n_boot=60)
    dev = res.calibration.devices["cpu"]
    assert dev.overhead_ms < 4.5  # 7.8 ms with the host's saturated seconds counted
    # think-time pacing slows the light-load executions: the back-to-back level k0 < k
    assert dev.idle_slowdown > 0 and res.devices["cpu"].idle_gap is not None
    assert res.devices["cpu"].idle_gap.k_warm.value < res.devices["cpu"].in_load.k.value
    v = validate(res.calibration, [load_bundle(SWEEP), load_bundle(OFF_SWEEP)], seeds=3)
    s = v.summary()
    assert s["p50_mape"] < 0.13 and s["batch_size_mape"] < 0.02 and s["throughput_mape"] < 0.11
    hot = s["bias"][">80%"]
    assert abs(hot["throughput_rps"]) < 0.10 and abs(hot["p50_ms"]) < 0.10

"""Twin mechanisms found in the real traces (docs/calibration.md, "Mechanisms"): each is a
calibration parameter whose neutral value leaves the twin exactly as it was, and each fit
recovers a known value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic_truth import true_scenario

from calibration.bundle import load_bundle
from calibration.fit import fit_core_scaling, fit_core_scaling_by_size, fit_isolated
from kisim.core.config import Scenario, override
from kisim.env.episode import run_windows, twin_backend

TRACES = Path(__file__).resolve().parents[2] / "traces"


def _latencies(sc: Scenario, seed: int = 0) -> np.ndarray:
    ep = run_windows(twin_backend(), sc, seed)
    return np.array([w.latency_p50_ms for w in ep.windows])


def _two_replicas(nodes: int, **device: float) -> Scenario:
    sc = true_scenario(users=[80, 80], step_s=30.0, batching={"enabled": False})
    per = 2 // nodes
    return override(
        sc,
        "test",
        **{
            "pools.cpu.replicas": 2,
            "pools.cpu.min_replicas": 2,
            "pools.cpu.max_replicas": 2,
            "cluster.nodes": [
                {"name": "h", "count": nodes, "cpu": 2.0 * per + 1, "memory_gib": 64}
            ],
            **{f"calibration.devices.cpu.{k}": v for k, v in device.items()},
        },
    )


def test_neutral_values_leave_the_twin_unchanged() -> None:
    sc = true_scenario(users=[5, 60], step_s=30.0)
    base = _latencies(sc)
    neutral = {
        "overhead_busy_factor": 0.0,
        "host_sharing_penalty": 0.0,
        "core_scaling_per_doubling": 0.0,
        "batch_merge_ms": 0.0,
        "overhead_per_batch_position_ms": 0.0,
    }
    same = override(sc, "test", **{f"calibration.devices.cpu.{k}": v for k, v in neutral.items()})
    assert np.array_equal(base, _latencies(same))


def test_overhead_grows_with_the_busy_share() -> None:
    sc = true_scenario(users=[2, 60], step_s=30.0, batching={"enabled": False})
    base = _latencies(sc)
    busy = _latencies(override(sc, "test", **{"calibration.devices.cpu.overhead_busy_factor": 2.0}))
    assert busy[2:].mean() > base[2:].mean() * 1.3  # 60 users, a busy replica: overhead x <= 3
    assert busy[:2].mean() < base[:2].mean() * 1.1  # 2 users: the replica is mostly idle


def test_batch_merge_cost_only_for_batches_of_several_requests() -> None:
    off = true_scenario(users=[5, 60], step_s=30.0, batching={"enabled": False})
    merged = override(off, "test", **{"calibration.devices.cpu.batch_merge_ms": 3.0})
    assert np.array_equal(_latencies(off), _latencies(merged))  # every batch is one request
    on = true_scenario(users=[5, 150], step_s=30.0)
    base = _latencies(on)
    slow = _latencies(override(on, "test", **{"calibration.devices.cpu.batch_merge_ms": 3.0}))
    assert slow[2:].mean() > base[2:].mean() * 1.05  # 150 users: batches of several requests


def test_overhead_per_batch_position_only_for_batches_of_several() -> None:
    off = true_scenario(users=[5, 60], step_s=30.0, batching={"enabled": False})
    pos = {"calibration.devices.cpu.overhead_per_batch_position_ms": 4.0}
    assert np.array_equal(_latencies(off), _latencies(override(off, "test", **pos)))
    on = true_scenario(users=[5, 150], step_s=30.0)
    base = _latencies(on)
    slow = _latencies(override(on, "test", **pos))
    assert slow[2:].mean() > base[2:].mean() * 1.05  # 150 users: batches of several requests


def test_batch_merge_recovered_by_replays(tmp_path: Path) -> None:
    from calibration.calibrate import calibrate
    from calibration.synth import write_synthetic_bundle

    sc = true_scenario(users=[4, 40, 100, 220], name="merge")
    sc = override(sc, "test", **{"calibration.devices.cpu.batch_merge_ms": 2.0})
    bun = load_bundle(write_synthetic_bundle(tmp_path / "m", sc, 1, name="syn-merge"))
    # an unbatched pool pins the level k on batches of one request, as cpu-off-step does
    off = true_scenario(users=[3, 20, 40, 60], step_s=30.0, batching={"enabled": False})
    off = override(off, "test", **{"calibration.devices.cpu.batch_merge_ms": 2.0})
    one = load_bundle(write_synthetic_bundle(tmp_path / "o", off, 2, name="syn-off"))
    d = calibrate([bun, one], "m", sc.calibration, n_boot=40).devices["cpu"]
    assert d.in_load.k.contains(1.0)
    assert d.batch_merge is not None and d.batch_merge.contains(2.0), d.batch_merge
    assert d.batch_merge.lo > 0.5 and d.device.batch_merge_ms == pytest.approx(d.batch_merge.value)


def test_host_sharing_applies_only_between_replicas_on_one_node() -> None:
    apart = _latencies(_two_replicas(2))
    apart_pen = _latencies(_two_replicas(2, host_sharing_penalty=1.0))
    shared = _latencies(_two_replicas(1))
    shared_pen = _latencies(_two_replicas(1, host_sharing_penalty=1.0))
    assert np.array_equal(apart, apart_pen)  # one replica per node: nothing to share
    assert np.array_equal(apart, shared)  # penalty 0: the node does not matter
    assert shared_pen.mean() > shared.mean() * 1.03  # the two replicas overlap often


SIZES = np.repeat([1, 2, 4, 8], 40)
T2 = 9.0 + 7.0 * (SIZES - 1)  # isolated ms at the reference 2 cores


def _isolated_at_two_core_counts(
    rng: np.random.Generator, exponent: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(batch sizes, ms, cores): T2 at 2 cores and T2 * 2**exponent at 1, noise cv 0.15."""
    b = np.concatenate([SIZES, SIZES])
    cores = np.concatenate([np.full(len(SIZES), 2.0), np.full(len(SIZES), 1.0)])
    mean = np.concatenate([T2, T2 * 2.0**exponent])
    return b, mean * rng.lognormal(-(0.15**2) / 2, 0.15, len(b)), cores


def test_core_scaling_from_isolated_times_at_two_core_counts() -> None:
    rng = np.random.default_rng(1)
    b, ms, cores = _isolated_at_two_core_counts(rng, 0.6)
    e = fit_core_scaling(b, ms, cores, 2.0, rng, 200)
    assert e is not None and e.contains(0.6) and e.hi - e.lo < 0.2
    assert fit_core_scaling(SIZES, T2, np.full(len(SIZES), 2.0), 2.0, rng, 50) is None


def test_core_scaling_per_doubling_of_the_batch_size() -> None:
    """e(b) = core_scaling + d log2(b): a 1-core replica (reference 2) at light load (batches
    of ~1) is faster with a small b = 1 exponent, whatever d does to large batches."""
    sc = true_scenario(users=[3, 3], step_s=30.0, batching={"enabled": False})
    sc = override(sc, "test", **{"pools.cpu.resources.cpu": 1.0})
    dev = sc.calibration.devices["cpu"]
    assert [dev.core_exponent(b) for b in (1, 8)] == [dev.core_scaling] * 2
    by_size = dev.model_copy(update={"core_scaling": 0.2, "core_scaling_per_doubling": 0.3})
    assert by_size.core_exponent(1) == pytest.approx(0.2)
    assert by_size.core_exponent(8) == pytest.approx(1.1)
    neg = dev.model_copy(update={"core_scaling": 0.2, "core_scaling_per_doubling": -0.3})
    assert neg.core_exponent(8) == 0.0  # clamped
    base = _latencies(sc)
    small = _latencies(
        override(
            sc,
            "test",
            **{
                "calibration.devices.cpu.core_scaling": 0.2,
                "calibration.devices.cpu.core_scaling_per_doubling": 0.3,
            },
        )
    )
    ratio = 2.0**0.2 / 2.0**0.6  # batch-1 service time, 1 core vs reference 2
    assert small.mean() < base.mean() - 0.5 * (1 - ratio) * 9.0


def test_core_scaling_per_doubling_from_isolated_times() -> None:
    rng = np.random.default_rng(3)
    for e1, d in ((0.2, 0.3), (0.6, 0.0)):
        b, ms, cores = _isolated_at_two_core_counts(rng, e1 + d * np.log2(SIZES))
        fit = fit_core_scaling_by_size(b, ms, cores, 2.0, rng, 200)
        assert fit is not None
        assert fit[0].contains(e1) and fit[1].contains(d), fit
    one = np.repeat([1], 40)
    assert (
        fit_core_scaling_by_size(
            np.concatenate([one, one]), np.full(80, 9.0), np.repeat([2.0, 1.0], 40), 2.0, rng, 20
        )
        is None
    )


def test_noise_is_the_spread_within_a_recording() -> None:
    """Two recordings at levels 1 and 1.3 (a shared host): cv stays the within-recording 0.1."""
    rng = np.random.default_rng(2)
    b = np.tile(np.repeat([1, 4], 60), 2)
    level = np.repeat([1.0, 1.3], 120)
    ms = (10.0 + 5.0 * (b - 1)) * level * rng.lognormal(-0.005, 0.1, len(b))
    src = np.repeat(["a", "b"], 120)
    within = fit_isolated(b, ms, rng, 100, src)
    pooled = fit_isolated(b, ms, rng, 100)
    assert within.cv.contains(0.1) or abs(within.cv.value - 0.1) < 0.015
    assert pooled.cv.value > 0.15


@pytest.mark.skipif(not TRACES.is_dir(), reason="no traces/ folder")
def test_the_real_traces_load_without_a_warning() -> None:
    names = sorted(p.name for p in TRACES.iterdir() if (p / "manifest.yaml").is_file())
    # 8 schedules of the shipped calibration + 2 concurrency sweeps + 3 one-thread step
    # schedules + 4 one-thread ramps and spikes (issue 15)
    assert len(names) == 17
    # issue 15's protocol recorded twice within one hour: 2 steps, 2 ramps, 2 spikes a round
    same_hour = sorted(
        p.parent.relative_to(TRACES) for p in TRACES.glob("same-hour/**/manifest.yaml")
    )
    assert len(same_hour) == 12
    for n in [*names, *same_hour]:
        b = load_bundle(TRACES / n)
        assert b.warnings == [], (n, b.warnings)
        assert b.service_times is not None and b.service_times.overhead_ms is not None


@pytest.mark.skipif(not (TRACES / "same-hour").is_dir(), reason="no traces/same-hour")
@pytest.mark.parametrize(
    ("fit_set", "why"),
    [
        (["cpu1-b8-step", "cpu1-off-step"], "additive per-execution cost"),
        (["repeats/cpu1-b8-step-r1", "repeats/cpu1-off-step-r1"], "CI spans 1"),
    ],
)
def test_the_report_says_why_the_applied_in_load_factor_is_not_k(
    fit_set: list[str], why: str
) -> None:
    # three fits can set the factor the twin uses; a reader of `kisim calibrate` sees which
    from calibration.calibrate import calibrate
    from calibration.report import fit_table

    res = calibrate([load_bundle(TRACES / "same-hour" / n) for n in fit_set], "x")
    d = res.devices["cpu"]
    assert d.in_load.k_applied == 1.0 != d.in_load.k.value
    rows = {p: e for _k, p, e, _m in fit_table(res)}
    assert why in rows["in-load factor k"], rows["in-load factor k"]

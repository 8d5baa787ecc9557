"""Seconds in which the recording host had no spare core are left out of the overhead fit
(`calibration.host_load`, issue 15): there the client and the front end wait for a core and
the overhead swings far above what a host with cores to spare shows."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from calibration.host_load import SATURATED_SHARE, host_cores, overlaps, saturated_spans
from calibration.overhead import _Intervals, fit_overhead


def _bundle(tmp_path: Path, busy: list[float], cores: float | None = 2.0) -> SimpleNamespace:
    rows = ["t_unix_s,host_busy_cores,loadgen_cores,loadavg_1m"]
    rows += [f"{100.0 + i:.3f},{b:.3f},0.1,1.0" for i, b in enumerate(busy)]
    (tmp_path / "host.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "recording.yaml").write_text("hardware:\n  cpu_cores: 2\n")
    hw = SimpleNamespace(host_cores=cores)
    return SimpleNamespace(path=tmp_path, manifest=SimpleNamespace(hardware=hw))


def test_saturated_seconds_are_the_samples_at_the_share(tmp_path: Path) -> None:
    b = _bundle(tmp_path, [0.5, 1.9, 1.2, 2.0, 1.0])
    spans = saturated_spans(b)  # type: ignore[arg-type]
    # a sample at t covers (t - 1, t]: 1.9 at t = 101, 2.0 at t = 103 (>= 0.9 x 2 cores)
    assert spans.tolist() == [[100.0, 101.0], [102.0, 103.0]]
    starts, ends = np.array([99.5, 101.0, 101.5, 103.0]), np.array([100.5, 102.0, 102.5, 104.0])
    assert overlaps(starts, ends, spans).tolist() == [True, False, True, False]
    assert SATURATED_SHARE * 2 == 1.8


def test_host_cores_fall_back_to_the_recording(tmp_path: Path) -> None:
    b = _bundle(tmp_path, [0.5, 1.0], cores=None)
    assert host_cores(b) == 2.0  # type: ignore[arg-type]
    (tmp_path / "recording.yaml").write_text("hardware: {}\n")
    assert host_cores(b) is None  # type: ignore[arg-type]
    assert saturated_spans(b).shape == (0, 2)  # type: ignore[arg-type]


def _intervals(saturated: np.ndarray, rng: np.random.Generator) -> _Intervals:
    """One request per 10 ms of 1 s intervals, queue 5 ms, compute 10 ms; overhead 2 ms
    with a spare core and 12 ms on a saturated host."""
    n, per = len(saturated), 40
    ovh = np.where(saturated, 12.0, 2.0)
    groups = [15.0 + o + rng.normal(0.0, 1.0, per) for o in ovh]
    return _Intervals(
        dt=np.ones(n),
        n_client=np.full(n, float(per)),
        lat_sum=np.array([g.sum() for g in groups]),
        items=np.full(n, float(per)),
        execs=np.full(n, float(per)),
        queue_us=np.full(n, 5e3 * per),
        compute_us=np.full(n, 10e3 * per),
        request_us=np.full(n, 15.3e3 * per),
        success=np.full(n, float(per)),
        delay_us=np.zeros(n),
        capacity=np.ones(n),
        groups=groups,
        saturated=saturated,
        bmax=np.ones(n),
    )


def test_overhead_is_fitted_where_the_host_had_a_core_to_spare() -> None:
    hot = np.zeros(60, dtype=bool)
    hot[20:35] = True  # a quarter of the run on a saturated host
    rng = np.random.default_rng(0)
    fit = fit_overhead([_intervals(hot, rng)], True, 0.0, 0.25, rng, 50)
    assert abs(fit.total.value - 2.0) < 0.1
    (note,) = [n for n in fit.notes if "no spare core" in n]
    assert abs(float(note.split("overhead there ")[1].split(" ms")[0]) - 12.0) < 0.2
    # without host.csv's verdict the saturated quarter pulls the mean to ~4.5 ms
    blind = fit_overhead([_intervals(np.zeros(60, dtype=bool), rng)], True, 0.0, 0.25, rng, 50)
    mixed = _intervals(hot, rng)
    mixed.saturated = np.zeros(60, dtype=bool)
    assert fit_overhead([mixed], True, 0.0, 0.25, rng, 50).total.value > 4.0
    assert abs(blind.total.value - 2.0) < 0.1


def test_a_host_saturated_throughout_keeps_its_overhead() -> None:
    rng = np.random.default_rng(1)
    fit = fit_overhead([_intervals(np.ones(30, dtype=bool), rng)], True, 0.0, 0.25, rng, 50)
    assert abs(fit.total.value - 12.0) < 0.2


def test_overhead_per_batch_position_is_recovered() -> None:
    """Batches of b (all full: no spread to guess) whose j-th response takes 1.5 + 1.2 j ms:
    the mean overhead of an interval is 1.5 + 1.2 (b - 1) / 2."""
    rng = np.random.default_rng(2)
    n, per = 80, 40
    b = np.repeat([1.0, 2.0, 3.0, 4.0], n // 4)
    iv = _intervals(np.zeros(n, dtype=bool), rng)
    ovh = 1.5 + 1.2 * (b - 1) / 2
    iv.groups = [15.0 + o + rng.normal(0.0, 1.0, per) for o in ovh]
    iv.lat_sum = np.array([g.sum() for g in iv.groups])
    iv.execs, iv.bmax = per / b, b
    fit = fit_overhead([iv], True, 0.0, 0.25, rng, 100)
    assert fit.per_position is not None and fit.first is not None
    assert fit.per_position.contains(1.2) and fit.first.contains(1.5)
    assert abs(fit.per_position.value - 1.2) < 0.15 and fit.busy_factor is None

"""The forgiving, exact reader (issue 15): every problem of a bundle at once, each located;
unknown keys a warning; `pool` optional with one pool; threads per instance apart from the
replica's cores; windows weighted by duration; utilisation capped at the instances' capacity."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from calibration.bundle import load_bundle
from calibration.manifest import BundlePool
from calibration.validate import _mapes, real_windows
from kisim.core.errors import TraceError


def _rewrite(path: Path, fn) -> None:  # type: ignore[no-untyped-def]
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    rows = fn(rows)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_every_problem_of_every_file_at_once(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()

    def bad_requests(rows: list[list[str]]) -> list[list[str]]:
        rows[3][1] = "fast"
        rows[7][2] = "2"
        return rows

    def bad_times(rows: list[list[str]]) -> list[list[str]]:
        rows[2][1] = "1.5"
        return rows

    _rewrite(b / "requests.csv", bad_requests)
    _rewrite(b / "service_times.csv", bad_times)
    with pytest.raises(TraceError) as e:
        load_bundle(b)
    msg = str(e.value)
    assert "requests.csv: 2 problem(s)" in msg
    assert re.search(r"requests.csv: line 4, column 2 \(latency_ms\): not a number: 'fast'", msg)
    assert re.search(r"requests.csv: line 8, column 3 \(ok\): expected 1 or 0", msg)
    assert re.search(r"service_times.csv: line 3, column 2 \(batch_size\): not an integer", msg)


def test_pool_column_optional_with_one_pool(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    ref = load_bundle(b)

    def drop_pool(rows: list[list[str]]) -> list[list[str]]:
        i = rows[0].index("pool")
        return [r[:i] + r[i + 1 :] for r in rows]

    _rewrite(b / "requests.csv", drop_pool)
    got = load_bundle(b)
    assert (got.requests.pool == "cpu").all()
    assert np.array_equal(got.requests.latency_ms, ref.requests.latency_ms)


def test_threads_per_instance_set_the_compute_cores() -> None:
    base = {"device": "cpu", "replicas": 1, "resources": {"cpu": 2},
            "batching": {"enabled": False}}  # fmt: skip
    assert BundlePool.model_validate(base).compute_cores == 2.0  # default: the replica's cores
    one = BundlePool.model_validate({**base, "threads_per_instance": 1})
    assert one.compute_cores == 1.0  # one intra-op thread on a 2-core host
    two = BundlePool.model_validate({**base, "instances": 2, "threads_per_instance": 4})
    assert two.compute_cores == 2.0  # never more than the replica has


def test_threads_per_instance_reaches_the_replay(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    from calibration.replay import scenario_for
    from kisim.core.config import load_calibration
    from kisim.core.paths import config_path

    b = copy_bundle()
    text = (b / "manifest.yaml").read_text()
    (b / "manifest.yaml").write_text(
        text.replace("instances: 1", "instances: 1\n    threads_per_instance: 1")
    )
    bun = load_bundle(b)
    assert bun.warnings == []
    cal = load_calibration(config_path("calibration", "rtx3080-desktop-cpu.yaml"))
    sc = scenario_for(bun, cal, 15.0)
    assert sc.pools["cpu"].resources.cpu == 1.0


def test_windows_weigh_by_duration_and_utilisation_is_capped(bundles: dict[str, Path]) -> None:
    bun = load_bundle(bundles["step"])
    edges, _real, util, _n, _ = real_windows(bun, 15.0)
    assert np.all(util <= 1.0) and np.nanmax(util) > 0.8  # saturates, never above capacity

    class W:  # a validated bundle: one 15 s window and a trailing 1.5 s one
        t_start = np.array([0.0, 15.0])
        t_end = np.array([15.0, 16.5])
        util = np.array([0.3, 0.3])
        ape = {m: np.array([0.1, 1.0]) for m in
               ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "queue_wait_ms", "batch_size",
                "success_rate")}  # fmt: skip

    got = _mapes([W()])["p50_mape"]
    assert got == pytest.approx((0.1 * 15 + 1.0 * 1.5) / 16.5)


def test_service_times_in_summary_form(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    """One row per batch size (median / mean / n) is read as n measurements of its lognormal:
    the fit then has a noise cv and mean intervals, as from the long form."""
    import math

    from calibration import fit as F
    from calibration.trace_files import read_service_times

    b = copy_bundle()
    long = load_bundle(b).service_times
    assert long is not None
    lines = ["device,batch_size,n,median_ms,mean_ms,p95_ms"]
    for s in np.unique(long.batch_size):
        x = long.ms[long.batch_size == s]
        lines.append(f"cpu,{s},{len(x)},{np.median(x):.4f},{x.mean():.4f},"
                     f"{np.percentile(x, 95):.4f}")  # fmt: skip
    (b / "service_times.csv").write_text("\n".join(lines) + "\n")
    summ = load_bundle(b).service_times
    assert summ is not None and len(summ.ms) == len(long.ms)
    rng = np.random.default_rng(0)
    fl = F.fit_isolated(long.batch_size, long.ms, rng, 100)
    fs = F.fit_isolated(summ.batch_size, summ.ms, rng, 100)
    # the same curve and noise within the long form's own intervals
    assert fl.base.contains(fs.base.value) and fl.per_item.contains(fs.per_item.value)
    assert math.isfinite(fs.cv.value) and abs(fs.cv.value - fl.cv.value) < 0.03
    assert np.all(fs.mean_hi - fs.mean_lo > 0)  # uncertainty per size, not a degenerate fit
    # p95 with the median, or with the mean, fix the spread too; bad rows are all reported
    for cols in (("median_ms", "p95_ms"), ("mean_ms", "p95_ms")):
        head = "device,batch_size,n," + ",".join(cols)
        rows = [
            ",".join(
                r.split(",")[i]
                for i in [0, 1, 2] + [{"median_ms": 3, "mean_ms": 4, "p95_ms": 5}[c] for c in cols]
            )
            for r in lines[1:]
        ]
        (b / "service_times.csv").write_text("\n".join([head, *rows]) + "\n")
        st = read_service_times(b / "service_times.csv", load_bundle(b).manifest.pools)
        assert abs(F.fit_isolated(st.batch_size, st.ms, rng, 50).cv.value - fl.cv.value) < 0.05
    (b / "service_times.csv").write_text(
        "device,batch_size,n,median_ms,mean_ms\ncpu,1,30,10,9\ncpu,2,x,12,13\n"
    )
    with pytest.raises(TraceError) as e:
        load_bundle(b)
    assert "2 problem(s)" in str(e.value) and "below median_ms" in str(e.value)
    assert "line 3, column 3 (n): not a number" in str(e.value)


def test_one_measurement_per_size_names_the_prior_noise(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    """One long-form row per batch size has no spread: the noise is the prior's, and says so
    (not cv 0 from a degenerate fit)."""
    from calibration.calibrate import calibrate
    from calibration.report import fit_table

    b = copy_bundle()

    def one_per_size(rows: list[list[str]]) -> list[list[str]]:
        seen: set[tuple[str, str]] = set()
        out = [rows[0]]
        for r in rows[1:]:
            if (r[0], r[1]) not in seen:
                seen.add((r[0], r[1]))
                out.append(r)
        return out

    _rewrite(b / "service_times.csv", one_per_size)
    res = calibrate([load_bundle(b)], "one", n_boot=30)
    d = res.devices["cpu"]
    assert "service.noise" in d.from_prior
    assert d.device.service.noise.cv == pytest.approx(0.1)  # the built-in prior's
    rows = {p: e for _k, p, e, _m in fit_table(res)}
    assert "(prior)" in rows["service.noise"] and "service.noise=" in rows["from the prior"]
    assert "service.noise" in res.calibration.provenance

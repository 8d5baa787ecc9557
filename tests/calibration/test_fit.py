"""The fits recover the parameters the synthetic bundles were drawn from, within their own
95 % intervals (the promise of docs/calibration.md), and say what they could not fit."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from synthetic_truth import ROOT, TRUE

from calibration.bundle import load_bundle
from calibration.calibrate import CalibrationResult, calibrate
from calibration.fit import busy_pmf, fit_isolated
from kisim.core.config import load_calibration
from kisim.core.errors import TraceError

PRIOR = ROOT / "configs" / "calibration" / "rtx3080-desktop-cpu.yaml"
N_BOOT = 120


@pytest.fixture(scope="session")
def fitted(bundles: dict[str, Path]) -> CalibrationResult:
    return calibrate(
        [load_bundle(bundles["step"]), load_bundle(bundles["inst2"])],
        "fit",
        load_calibration(PRIOR),
        str(PRIOR),
        n_boot=N_BOOT,
    )


def test_curve_noise_and_overhead_within_their_intervals(fitted: CalibrationResult) -> None:
    d = fitted.devices["cpu"]
    assert d.curve.source == "isolated" and d.curve.form == "affine"
    assert d.curve.base.contains(TRUE["base_ms"]), d.curve.base
    assert d.curve.per_item.contains(TRUE["per_item_ms"]), d.curve.per_item
    assert d.curve.cv.contains(TRUE["cv"]), d.curve.cv
    assert d.curve.family == "lognormal"
    assert d.overhead.total.contains(TRUE["overhead_ms"]), d.overhead.total
    assert d.overhead.noise_cv is not None and d.overhead.noise_cv.contains(TRUE["overhead_cv"])
    # the twin has no time inside Triton outside queue and compute: all overhead is client-side
    assert d.overhead.server is not None and abs(d.overhead.server.value) < 1e-6
    assert d.overhead.client is not None and d.overhead.client.contains(TRUE["overhead_ms"])
    # the counters agree with the isolated curve: k's interval holds 1 and k is not applied
    assert d.in_load.k.contains(1.0) and d.in_load.k_applied == 1.0
    # nor does the batcher's merging cost anything: not applied
    assert d.batch_merge is not None and d.batch_merge.contains(0.0), d.batch_merge
    assert d.device.batch_merge_ms == 0.0
    # intervals are informative, not vacuous
    assert d.curve.base.hi - d.curve.base.lo < 0.1 * TRUE["base_ms"]
    assert d.overhead.total.hi - d.overhead.total.lo < 0.05 * TRUE["overhead_ms"]


def test_concurrency_and_startup(fitted: CalibrationResult) -> None:
    d = fitted.devices["cpu"]
    # two instances sharing two cores at varying load identify core_scaling: the twin
    # replays that bundle on a grid of values (calibration.concurrency)
    c = d.concurrency
    assert c is not None
    assert c.theta.contains(TRUE["core_scaling"]), c.theta
    assert c.theta.hi - c.theta.lo < 0.2
    assert c.k.contains(1.0)
    assert d.device.core_scaling == pytest.approx(c.theta.value)
    st = d.device.startup
    assert st.container_start_s == pytest.approx(TRUE["container_start_s"], abs=0.01)
    assert d.startup.model_load_s is not None and d.startup.model_load_s.contains(
        TRUE["model_load_s"]
    )
    assert abs(st.model_load_cv - TRUE["model_load_cv"]) < 0.08
    assert (st.readiness_initial_delay_s, st.readiness_period_s) == (0.0, 0.25)  # local backend
    assert d.cpu_per_request is not None and abs(d.cpu_per_request.value - 3.0) < 0.45


def test_written_calibration_loads_and_states_provenance(fitted: CalibrationResult) -> None:
    cal = fitted.calibration
    dev = cal.devices["cpu"]
    assert dev.service.table_ms is None
    assert dev.service.time_ms(4) == pytest.approx(
        TRUE["base_ms"] + 3 * TRUE["per_item_ms"], rel=0.05
    )
    assert "fitted-on: syn-step, syn-inst2" in cal.provenance
    assert "memory_per_item_gib" in cal.provenance  # named as coming from the prior
    assert "syn-step" in cal.provenance and "recorded 2026-11-23" in cal.provenance


def test_in_load_factor_is_detected_and_applied(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle("step")
    f = b / "service_times.csv"
    rows = f.read_text().splitlines()
    out = [rows[0]]
    for r in rows[1:]:
        dev, size, rep, ms = r.split(",")
        out.append(
            f"{dev},{size},{rep},{float(ms) * 1.25:.5f}"
        )  # isolated 25 % slower than in load
    f.write_text("\n".join(out) + "\n")
    res = calibrate([load_bundle(b)], "k", load_calibration(PRIOR), n_boot=N_BOOT)
    d = res.devices["cpu"]
    assert d.in_load.k.contains(0.8), d.in_load.k
    assert d.in_load.k_applied == pytest.approx(d.in_load.k.value)
    assert res.calibration.devices["cpu"].service.base_ms == pytest.approx(
        TRUE["base_ms"], rel=0.05
    )
    assert any("scaled by" in n for n in d.notes)


def test_counters_alone_when_service_times_are_missing(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle("step")
    (b / "service_times.csv").unlink()
    res = calibrate([load_bundle(b)], "c", load_calibration(PRIOR), n_boot=N_BOOT)
    d = res.devices["cpu"]
    assert d.curve.source == "counters"
    assert d.curve.base.value == pytest.approx(TRUE["base_ms"], rel=0.06)
    assert d.curve.per_item.value == pytest.approx(TRUE["per_item_ms"], rel=0.25)
    assert "service.noise" in d.from_prior
    assert any("no service_times.csv" in n for n in d.notes)
    assert any("service_times.csv: missing" in w for w in res.warnings)


def test_no_events_keeps_the_prior_and_says_so(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle("step")
    (b / "events.csv").unlink()
    res = calibrate([load_bundle(b)], "e", load_calibration(PRIOR), n_boot=40)
    d = res.devices["cpu"]
    assert (
        "startup.model_load_s" in d.from_prior
        and "startup.model_load_s" in res.calibration.provenance
    )
    assert any("no start-up events" in n for n in d.notes)


def test_table_form_and_noise_family() -> None:
    rng = np.random.default_rng(0)
    sizes = np.repeat(np.arange(1, 9), 60)
    concave = 5.0 + 8.0 * np.sqrt(sizes - 1)  # sub-linear: affine misfits
    ms = concave * rng.lognormal(-0.5 * 0.1**2, 0.1, len(sizes))
    fit = fit_isolated(sizes, ms, rng, 60)
    assert fit.form == "table" and fit.lack_of_fit_p < 1e-3
    assert np.all(np.abs(fit.means / (5.0 + 8.0 * np.sqrt(np.arange(8))) - 1) < 0.05)
    assert fit.cv.contains(0.1)
    expo = 10.0 * rng.exponential(1.0, 400)
    fit = fit_isolated(np.ones(400, dtype=int), expo, rng, 40)
    assert fit.family == "exponential"


def test_outliers_are_dropped_and_counted() -> None:
    rng = np.random.default_rng(1)
    b = np.repeat([1, 2, 4], 50)
    ms = (9.0 + 7.0 * (b - 1)) * rng.lognormal(0, 0.1, len(b))
    ms[[3, 70]] = 900.0  # a GC pause, a page fault storm
    fit = fit_isolated(b, ms, rng, 40)
    assert fit.dropped == 2 and any("outlier" in n for n in fit.notes)
    assert fit.base.contains(9.0)


def test_busy_pmf_matches_the_dispatch_rule() -> None:
    p = np.array([0.0, 0.5, 1.0])
    pmf = busy_pmf(2, p)
    assert np.allclose(pmf.sum(axis=1), 1.0)
    assert np.allclose(pmf[:, 1], [0.0, 0.75, 1.0])  # other busy: 1 - (1 - p)^2


def test_nothing_to_fit_is_an_error(bundles: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no bundles"):
        calibrate([], "x")
    b = load_bundle(bundles["step"])
    with pytest.raises(TraceError, match="used twice: syn-step"):
        calibrate([b, b], "x")
    shutil.copytree(bundles["step"], tmp_path / "s")
    (tmp_path / "s" / "service_times.csv").unlink()
    bun = load_bundle(tmp_path / "s")
    for ct in bun.counters.values():  # no execution in the counters at all
        for m in ("nv_inference_exec_count", "nv_inference_count"):
            ct.inc[m] = [0 * x for x in ct.inc[m]]
    with pytest.raises(TraceError, match="nothing to fit the service time on"):
        calibrate([bun], "x")


def test_gpu_sharing_penalty_by_simulation(tmp_path: Path) -> None:
    # two instances on one GPU with the dynamic batcher: instances rarely overlap, which an
    # independent-instances formula gets badly wrong; the twin's replay does not
    from calibration.synth import write_synthetic_bundle
    from kisim.core.config import load_scenario, override

    sc = load_scenario(ROOT / "configs" / "scenarios" / "default.yaml")
    gpu = {**sc.pools["gpu"].model_dump(mode="json"), "replicas": 1, "min_replicas": 1}
    gpu["max_replicas"], gpu["instances"] = 1, 2
    sc = override(
        sc,
        "test",
        pools={"gpu": gpu},
        duration_s=120.0,
        **{
            "controller.name": "static",
            "traffic.pattern": {"name": "step", "params": {"levels": [400, 1500], "step_s": 60}},
        },
    )
    bun = load_bundle(write_synthetic_bundle(tmp_path / "g", sc, 0, name="gpu2"))
    res = calibrate([bun], "g", sc.calibration, n_boot=40)
    d = res.devices["gpu"]
    assert d.concurrency is not None and d.concurrency.theta.contains(1.0), d.concurrency.theta
    assert d.curve.base.value == pytest.approx(1.6, rel=0.03)


def test_a_prior_core_scaling_keeps_its_batch_size_slope(bundles: dict[str, Path]) -> None:
    """A bundle at one core count cannot identify core scaling: the prior's exponent and its
    per-doubling slope are kept together (the exponent alone is only that of a batch of one)
    and both are named as the prior's."""
    prior = load_calibration(PRIOR)
    dev = prior.devices["desktop-cpu"]
    dev = dev.model_copy(update={"core_scaling": 0.18, "core_scaling_per_doubling": 0.29})
    prior = prior.model_copy(update={"devices": {"desktop-cpu": dev}})
    res = calibrate([load_bundle(bundles["step"])], "p", prior, str(PRIOR), n_boot=20)
    d = res.devices["cpu"]
    assert d.device.core_scaling == 0.18 and d.device.core_scaling_per_doubling == 0.29
    assert {"core_scaling", "core_scaling_per_doubling"} <= set(d.from_prior)

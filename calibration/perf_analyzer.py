"""Triton's Performance Analyzer as a calibration and validation source.

``perf_analyzer -f perf.csv [--verbose-csv]`` writes one row per load level — a
concurrency (``--concurrency-range``: N requests outstanding, each sent as soon as the
previous answer arrives) or a request rate (``--request-rate-range``: open loop) — with the
throughput, the client's latency percentiles and the server's mean queue / compute-input /
compute-infer / compute-output per request, all in microseconds (columns below;
docs/bundle-format.md, "perf_analyzer runs"). `kisim record` writes the same columns from
the local stack in its sweep mode (``sweep:`` in a record schedule).

A **perf run** is that CSV plus a short hand-written ``kind: PerfAnalyzerRun`` YAML naming
what the CSV cannot: the served configuration (replicas, instances, threads, cores,
batching), the client batch size (``-b``), the load mode and the hardware. `load_perf_run`
reads both, reporting every problem at once (file, line, column); `calibrate_perf` fits a
device from one or more runs; `validate_perf` replays every level in the twin.

What one level identifies (a row is a mean over perf_analyzer's measurement window):
- **execution time** = compute input + infer + output per request (what holds an instance
  busy; Triton charges each request in a batch the batch's time). With the dynamic batcher
  off — or at concurrency 1, where there is never a second request to merge — that is the
  time of a batch of the client's batch size ``-b``.
- **overhead** (the twin's pure delay outside queue and execution) = client send + network
  and server send/recv + client recv.
- **noise**: only at the lowest concurrency is a request's latency execution + overhead with
  no queue, so its p50..p99 spread (a lognormal through p50 and p90) gives the coefficient of
  variation of latency; split between execution and overhead with one common cv (an
  assumption, named in `provenance:`).
- **per-item cost**: from runs at two or more client batch sizes (affine fit); with the
  batcher on, from saturated levels, where throughput x execution time per request =
  mean batch size x instances; otherwise the prior's (named).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from calibration.estimate import Estimate, fixed
from calibration.perf_run import (
    PerfLevel,
    PerfRun,
    is_perf_run,
    load_perf_run,
)
from calibration.perf_validate import (
    perf_validation_md,
    validate_perf,
)
from kisim.core.config import Calibration, DeviceCalibration, Dist, ServiceCurve
from kisim.core.errors import TraceError

Z90 = 1.2815515655446004  # standard normal 90 % quantile
MAX_LISTED = 20
@dataclass
class PerfFit:
    """What `calibrate_perf` fitted, with the per-level table behind it."""

    calibration: Calibration
    device_key: str
    estimates: dict[str, Estimate]
    from_prior: list[str]
    assumptions: list[str]
    notes: list[str]
    runs: list[PerfRun]
    warnings: list[str]


def _lognormal_cv(p50: float, p90: float) -> float:
    """cv of the lognormal through (p50, p90)."""
    if p50 <= 0 or p90 <= p50:
        return 0.0
    s = math.log(p90 / p50) / Z90
    return math.sqrt(math.expm1(s * s))


def _wmean(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted mean and its standard error (from the weighted spread, n_eff)."""
    m = float(np.sum(w * x) / np.sum(w))
    if len(x) < 2:
        return m, math.nan
    var = float(np.sum(w * (x - m) ** 2) / np.sum(w))
    n_eff = float(np.sum(w) ** 2 / np.sum(w * w))
    return m, math.sqrt(var / max(n_eff - 1, 1))


def _est(m: float, se: float, n: int, method: str) -> Estimate:
    if not math.isfinite(se):
        return Estimate(m, math.nan, math.nan, n, method)
    return Estimate(m, m - 1.96 * se, m + 1.96 * se, n, method)


def calibrate_perf(
    runs: list[PerfRun],
    name: str,
    prior: Calibration | None = None,
    prior_path: str | None = None,
    device_key: str | None = None,
) -> PerfFit:
    """One device from perf runs of one kind (see the module doc for what each level
    identifies); what the runs cannot identify comes from `prior`, named in `from_prior`
    and in the calibration's `provenance:`."""
    if not runs:
        raise TraceError("no perf runs given")
    kinds = {r.spec.pool.device for r in runs}
    if len(kinds) > 1:
        raise TraceError(f"perf runs of several device kinds ({sorted(kinds)}): fit them apart")
    kind = kinds.pop()
    pd = next((d for d in (prior.devices.values() if prior else []) if d.kind == kind), None)
    pd = pd or DeviceCalibration(kind=kind, service=ServiceCurve(base_ms=1.0))  # type: ignore[arg-type]
    warnings = [w for r in runs for w in r.warnings]
    from_prior: list[str] = []
    assumptions: list[str] = []
    notes: list[str] = []
    cores = {r.spec.pool.compute_cores for r in runs}
    ref = max(cores, key=lambda c: sum(r.spec.pool.compute_cores == c for r in runs))
    if len(cores) > 1:
        warnings.append(
            f"perf runs at several core counts {sorted(cores)}: the curve is fitted at {ref:g}, "
            "the others are not used for it"
        )
    at_ref = [r for r in runs if r.spec.pool.compute_cores == ref]

    # execution time per client batch size: levels where no merging can happen
    by_b: dict[int, list[tuple[float, float]]] = {}  # b -> [(exec ms, weight)]
    lowest: list[PerfLevel] = []
    for r in at_ref:
        b = r.spec.client_batch_size
        merging = r.spec.pool.batching.enabled
        low = r.levels[0]
        lowest.append(low)
        use = [low] if (merging and r.mode == "concurrency") else r.levels
        if merging and r.mode == "request_rate":
            use = [lv for lv in r.levels if lv.throughput_rps * lv.exec_ms / 1e3 < 0.3] or [low]
        for lv in use:
            # weight: requests measured at the level
            by_b.setdefault(b, []).append((lv.exec_ms, lv.throughput_rps * r.spec.measurement_s))
    sizes = np.array(sorted(by_b))
    means, ses, ns = [], [], []
    for b in sizes:
        x = np.array([e for e, _ in by_b[int(b)]])
        w = np.array([w for _, w in by_b[int(b)]])
        m, se = _wmean(x, w)
        means.append(m)
        ses.append(se)
        ns.append(len(x))
    means_a = np.array(means)
    est: dict[str, Estimate] = {}
    per_item: Estimate | None = None
    if len(sizes) >= 2:
        A = np.vstack([np.ones(len(sizes)), sizes - 1.0]).T
        coef, *_ = np.linalg.lstsq(A, means_a, rcond=None)
        base = _est(float(coef[0]), math.nan, int(sum(ns)), "affine fit over client batch sizes")
        per_item = _est(max(float(coef[1]), 0.0), math.nan, int(sum(ns)),
                        "affine fit over client batch sizes")  # fmt: skip
    else:
        b0 = int(sizes[0])
        per_item = _per_item_from_saturation(at_ref, float(means_a[0]), b0, notes)
        p_item = per_item.value if per_item is not None else pd.service.per_item_ms
        how = "throughput-weighted over levels" if ns[0] > 1 else "lowest level"
        what = f"execution time (compute input+infer+output) per request, -b {b0}, {how}"
        base = _est(float(means_a[0]) - p_item * (b0 - 1), ses[0], ns[0], what)
        if per_item is None:
            from_prior.append("service.per_item_ms")
    est["service.base_ms"] = base
    est["service.per_item_ms"] = per_item or fixed(pd.service.per_item_ms, "prior")

    # overhead: every level, weighted by requests measured
    ov = np.array([lv.overhead_ms for r in runs for lv in r.levels])
    wo = np.array([lv.throughput_rps * r.spec.measurement_s for r in runs for lv in r.levels])
    m_o, se_o = _wmean(ov, wo)
    est["overhead_ms"] = _est(m_o, se_o, len(ov),
                              "client send + network/server send-recv + client recv")  # fmt: skip

    # noise: the lowest concurrency's latency spread (no queue there), one cv for both parts
    conc_lowest = [
        (r, r.levels[0]) for r in at_ref if r.mode == "concurrency" and r.levels[0].level == 1
    ]
    if conc_lowest:
        cvs, ws = [], []
        for r, lv in conc_lowest:
            cv_lat = _lognormal_cv(lv.p50_ms, lv.p90_ms)
            sd = cv_lat * lv.avg_ms
            cvs.append(sd / math.hypot(lv.exec_ms, lv.overhead_ms))
            ws.append(lv.throughput_rps * r.spec.measurement_s)
        m_cv, se_cv = _wmean(np.array(cvs), np.array(ws))
        est["service.noise.cv"] = _est(m_cv, se_cv, len(cvs),
                                       "lognormal through p50/p90 at concurrency 1")  # fmt: skip
        est["overhead_noise.cv"] = est["service.noise.cv"]
        assumptions.append(
            "noise: the latency spread at concurrency 1 (a lognormal through p50 and p90) is "
            "split between execution and overhead with one common cv"
        )
    else:
        from_prior += ["service.noise", "overhead_noise"]

    svc = ServiceCurve(
        base_ms=max(base.value, 1e-6),
        per_item_ms=max(est["service.per_item_ms"].value, 0.0),
        noise=Dist(kind="lognormal", cv=max(est["service.noise.cv"].value, 0.0))
        if "service.noise.cv" in est
        else pd.service.noise,
    )
    if kind == "cpu":
        from_prior += ["core_scaling", "core_scaling_per_doubling", "host_sharing_penalty"]
    else:
        from_prior.append("sharing_penalty")
    from_prior += ["batch_merge_ms", "cpu_per_request_ms", "memory_base_gib",
                   "memory_per_item_gib", "startup"]  # fmt: skip
    key = device_key or kind
    dev = pd.model_copy(
        update={
            "description": _description(runs),
            "service": svc,
            "reference_cores": ref,
            "overhead_ms": max(m_o, 0.0),
            "overhead_busy_factor": 0.0,
            "overhead_noise": Dist(kind="lognormal", cv=max(est["overhead_noise.cv"].value, 0.0))
            if "overhead_noise.cv" in est
            else pd.overhead_noise,
        }
    )
    if "overhead_busy_factor" not in from_prior and pd.overhead_busy_factor:
        notes.append("overhead_busy_factor set to 0: perf runs give one mean overhead per level")
    prov = _provenance(runs, key, from_prior, assumptions, prior_path)
    cal = Calibration(name=name, provenance=prov, devices={key: dev})
    return PerfFit(cal, key, est, from_prior, assumptions, notes, runs, warnings)


def _per_item_from_saturation(
    runs: list[PerfRun], base_b: float, b0: int, notes: list[str]
) -> Estimate | None:
    """Per-item cost from batched, saturated levels: there an instance is never idle, so
    throughput x execution time per request = mean batch size x instances x replicas, and
    (execution time per request - t(b0)) / (mean batch - b0) is the cost of one item more."""
    vals = []
    for r in runs:
        pool = r.spec.pool
        if not pool.batching.enabled:
            continue
        cap = pool.instances * pool.replicas
        for lv in r.levels[1:]:
            bbar = lv.throughput_rps * lv.exec_ms / 1e3 / cap * r.spec.client_batch_size
            if bbar > b0 + 0.5:
                vals.append((lv.exec_ms - base_b) / (bbar - b0))
    if len(vals) < 1:
        return None
    v = np.array(vals)
    m = float(np.median(v))
    notes.append(
        f"per-item cost {m:.3f} ms from {len(v)} saturated level(s) with batches "
        "(throughput x execution time = mean batch x instances)"
    )
    se = float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return _est(max(m, 0.0), se, len(v), "saturated batched levels")


def _description(runs: list[PerfRun]) -> str:
    s = runs[0].spec
    hw = s.hardware.description or s.hardware.gpu_model or s.hardware.cpu_model or "?"
    return (
        f"{hw}; {s.model.name} {s.model.format}, Triton {s.triton.version or '?'} "
        f"({s.triton.backend or '?'}); fitted by kisim calibrate from perf_analyzer output"
    )


def _provenance(
    runs: list[PerfRun],
    key: str,
    from_prior: list[str],
    assumptions: list[str],
    prior_path: str | None,
) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        f"Fitted by `kisim calibrate` on {now} from {len(runs)} perf_analyzer run(s) "
        "(calibration/perf_analyzer.py, docs/calibration.md).",
        f"fitted-on: {', '.join(r.name for r in runs)}",
        "perf-runs:",
    ]
    for r in runs:
        s, p = r.spec, r.spec.pool
        lines.append(
            f"  - {s.name} ({r.path}): {r.mode} {', '.join(f'{lv.level:g}' for lv in r.levels)}; "
            f"-b {s.client_batch_size}; source: {s.source or '?'}; hardware: "
            f"{s.hardware.description or '?'}; Triton {s.triton.version or '?'}; model "
            f"{s.model.name}; pool: {p.device}, {p.replicas} replica(s) x {p.instances} "
            f"instance(s), {p.compute_cores:g} compute cores, batching "
            + (
                f"max {p.batching.max_batch_size} / {p.batching.max_queue_delay_us} us"
                if p.batching.enabled
                else "off"
            )  # fmt: skip
        )
    for a in assumptions:
        lines.append(f"device {key}: assumed: {a}.")
    if from_prior:
        lines.append(
            f"device {key}: not identifiable from perf_analyzer levels, taken from the prior "
            f"{prior_path or '(built-in defaults)'}: {', '.join(from_prior)}."
        )
    return "\n".join(lines)


def perf_report_md(fit: PerfFit) -> str:
    """The calibration report of a perf fit: estimates, the per-level table, priors."""
    out = [f"# Calibration `{fit.calibration.name}` from perf_analyzer", ""]
    out += ["| parameter | estimate [95 % CI] | method |", "| --- | --- | --- |"]
    for k, e in fit.estimates.items():
        out.append(f"| {k} | {e.fmt()} | {e.method} |")
    out += ["", "Per level (ms; execution = compute input + infer + output):", ""]
    out += ["| run | level | req/s | queue | execution | overhead | p50 | p99 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in fit.runs:
        for lv in r.levels:
            out.append(
                f"| {r.name} | {lv.level:g} | {lv.throughput_rps:.1f} | {lv.queue_ms:.2f} | "
                f"{lv.exec_ms:.2f} | {lv.overhead_ms:.2f} | {lv.p50_ms:.2f} | {lv.p99_ms:.2f} |"
            )
    out += ["", f"From the prior: {', '.join(fit.from_prior) or 'nothing'}."]
    for a in fit.assumptions:
        out.append(f"Assumed: {a}.")
    for n in fit.notes:
        out.append(f"Note: {n}.")
    for w in fit.warnings:
        out.append(f"Warning: {w}")
    return "\n".join(out) + "\n"


def write_perf_calibration(fit: PerfFit, out: Path) -> list[Path]:
    """``NAME.yaml`` (the calibration, estimates in a comment block) and ``NAME.report.md``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    head = "".join(f"# {k}: {e.fmt()} ({e.method})\n" for k, e in fit.estimates.items())
    body = yaml.safe_dump(fit.calibration.model_dump(mode="json"), sort_keys=False)
    out.write_text(head + body)
    stem = out.name.removesuffix(".yaml").removesuffix(".yml")
    md = out.parent / f"{stem}.report.md"
    md.write_text(perf_report_md(fit))
    return [out, md]


# --------------------------------------------------------------------------- validation

def perf_sources(paths: list[Path]) -> bool:
    """True when every path is a perf run; `TraceError` when perf runs and bundles mix."""
    flags = [is_perf_run(p) for p in paths]
    if any(flags) and not all(flags):
        mixed = ", ".join(str(p) for p, f in zip(paths, flags, strict=True) if f)
        raise TraceError(
            f"perf_analyzer runs ({mixed}) and trace bundles cannot be fitted or validated "
            "together: give one kind per command"
        )
    return bool(flags) and all(flags)


def calibrate_command(
    paths: list[Path], out: Path, name: str, prior: Path | None, device_key: str | None,
    as_json: bool,
) -> str:  # fmt: skip
    """`kisim calibrate` on perf runs: fit, write NAME.yaml + NAME.report.md, the text to print."""
    import json

    from kisim.core.config import load_calibration

    runs = [load_perf_run(p) for p in paths]
    pri = load_calibration(prior) if prior is not None else None
    fit = calibrate_perf(runs, name, pri, str(prior) if prior else None, device_key)
    written = write_perf_calibration(fit, out)
    if as_json:
        dev = fit.calibration.devices[fit.device_key].model_dump(mode="json")
        doc = {
            "calibration": str(out),
            "devices": {fit.device_key: dev},
            "estimates": {
                k: {"value": e.value, "lo": e.lo, "hi": e.hi, "method": e.method}
                for k, e in fit.estimates.items()
            },
            "from_prior": fit.from_prior,
            "assumptions": fit.assumptions,
            "warnings": fit.warnings,
        }
        return json.dumps(_finite(doc), indent=1)
    lines = [f"{fit.device_key:<10} {k:<28} {e.fmt()}" for k, e in fit.estimates.items()]
    lines += [f"warning: {w}" for w in fit.warnings]
    lines.append(f"from the prior: {', '.join(fit.from_prior)}")
    lines.append("wrote " + ", ".join(map(str, written)))
    return "\n".join(lines)


def validate_command(
    paths: list[Path], config: Path, seeds: int, out: Path | None, as_json: bool,
    device: str | None = None,
) -> str:  # fmt: skip
    """`kisim validate` on perf runs: replay each level, the text to print (and files)."""
    import json

    from kisim.core.config import load_calibration

    runs = [load_perf_run(p) for p in paths]
    cal = load_calibration(config)
    v = validate_perf(cal, runs, seeds=seeds, config=str(config), device=device)
    summary = v.summary()
    md = perf_validation_md(v)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "validation.json").write_text(json.dumps(_finite(summary), indent=1))
        (out / "validation.md").write_text(md)
    warn = [w for r in runs for w in r.warnings]
    if v.held_in:
        warn.append(f"{', '.join(v.held_in)}: the calibration was fitted on it (not held out)")
    if as_json:
        return json.dumps(_finite({**summary, "warnings": warn}), sort_keys=True)
    return "\n".join([*(f"warning: {w}" for w in warn), md.strip()])


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


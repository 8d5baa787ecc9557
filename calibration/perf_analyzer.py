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

import csv
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import Field

from calibration.estimate import Estimate, fixed
from calibration.manifest import (
    _M,
    BundlePool,
    Hardware,
    ModelInfo,
    TritonInfo,
    load_yaml_mapping,
    validate_all,
)
from kisim.core.config import Calibration, DeviceCalibration, Dist, ServiceCurve
from kisim.core.errors import TraceError
from kisim.core.trace_bundle import PERF_COLUMNS, PERF_LEVEL_COLUMNS, PERF_VERBOSE_COLUMNS

Z90 = 1.2815515655446004  # standard normal 90 % quantile
MAX_LISTED = 20


@dataclass
class PerfLevel:
    """One row of a perf_analyzer CSV, in ms and requests/s."""

    level: float  # concurrency or request rate
    line: int
    throughput_rps: float  # requests/s (inferences/s over the client batch size)
    client_send_ms: float
    network_ms: float
    queue_ms: float
    input_ms: float
    infer_ms: float
    output_ms: float
    recv_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    avg_ms: float  # `Avg latency` with --verbose-csv, else the sum of the components

    @property
    def exec_ms(self) -> float:
        """Time an instance is held per request: compute input + infer + output."""
        return self.input_ms + self.infer_ms + self.output_ms

    @property
    def overhead_ms(self) -> float:
        """Time outside Triton's queue and compute: client send, network + server
        send/recv, client receive."""
        return self.client_send_ms + self.network_ms + self.recv_ms


def read_perf_csv(
    path: Path, batch_size: int = 1, warnings: list[str] | None = None
) -> tuple[str, list[PerfLevel]]:
    """(mode, levels sorted by level) of a perf_analyzer ``-f`` CSV; every bad cell is
    reported at once with its line, column and column name. Columns it does not know (a
    ``Batch Size`` a script prepended, the GPU columns of --verbose-csv) are ignored with a
    warning."""
    if not path.is_file():
        raise TraceError(f"{path}: missing (the perf_analyzer CSV)")
    problems: list[str] = []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (csv.Error, UnicodeDecodeError) as e:
        raise TraceError(f"{path}: not a readable CSV ({e})") from None
    rows = [(i + 1, r) for i, r in enumerate(rows) if r and any(c.strip() for c in r)]
    if not rows:
        raise TraceError(f"{path}: empty file (expected perf_analyzer's header)")
    hline, header = rows[0]
    header = [h.strip() for h in header]
    level_cols = [c for c in PERF_LEVEL_COLUMNS if c in header]
    missing = [c for c in PERF_COLUMNS if c not in header]
    if len(level_cols) != 1 or missing:
        what = []
        if len(level_cols) != 1:
            what.append("exactly one of 'Concurrency' and 'Request Rate'")
        if missing:
            what.append("column(s) " + ", ".join(repr(c) for c in missing))
        raise TraceError(
            f"{path}: line {hline}: header lacks {' and '.join(what)} (not a perf_analyzer -f CSV?)"
        )
    known = {*PERF_COLUMNS, *PERF_VERBOSE_COLUMNS, *PERF_LEVEL_COLUMNS}
    ignored = [c for c in header if c not in known]
    if ignored and warnings is not None:
        warnings.append(f"{path}: column(s) {', '.join(ignored)} ignored")
    lc = level_cols[0]
    idx = {c: header.index(c) for c in header}
    levels: list[PerfLevel] = []
    for line, r in rows[1:]:
        if len(r) != len(header):
            problems.append(f"{path}: line {line}: {len(r)} fields, the header has {len(header)}")
            continue
        vals: dict[str, float] = {}
        for c in (lc, *PERF_COLUMNS, *[v for v in PERF_VERBOSE_COLUMNS if v in idx]):
            raw = r[idx[c]].strip()
            try:
                v = float(raw)
            except ValueError:
                problems.append(
                    f"{path}: line {line}, column {idx[c] + 1} ({c}): not a number: {raw!r}"
                )
                continue
            if not math.isfinite(v) or v < 0:
                problems.append(
                    f"{path}: line {line}, column {idx[c] + 1} ({c}): must be a finite number "
                    f">= 0, got {raw}"
                )
                continue
            vals[c] = v
        if len(vals) < 1 + len(PERF_COLUMNS):
            continue
        if vals[lc] <= 0 or vals["Inferences/Second"] <= 0:
            c = lc if vals[lc] <= 0 else "Inferences/Second"
            problems.append(f"{path}: line {line}, column {idx[c] + 1} ({c}): must be > 0")
            continue
        ps = [vals[f"p{q} latency"] for q in (50, 90, 95, 99)]
        if any(b < a for a, b in zip(ps, ps[1:], strict=False)):
            problems.append(f"{path}: line {line}: latency percentiles decrease ({ps})")
            continue
        ms = {c: vals[c] / 1e3 for c in vals}
        comp = sum(ms[c] for c in PERF_COLUMNS[1:8])
        levels.append(
            PerfLevel(
                level=vals[lc], line=line,
                throughput_rps=vals["Inferences/Second"] / batch_size,
                client_send_ms=ms["Client Send"], network_ms=ms["Network+Server Send/Recv"],
                queue_ms=ms["Server Queue"], input_ms=ms["Server Compute Input"],
                infer_ms=ms["Server Compute Infer"], output_ms=ms["Server Compute Output"],
                recv_ms=ms["Client Recv"], p50_ms=ms["p50 latency"], p90_ms=ms["p90 latency"],
                p95_ms=ms["p95 latency"], p99_ms=ms["p99 latency"],
                avg_ms=ms.get("Avg latency", comp),
            )
        )  # fmt: skip
    if problems:
        shown = problems[:MAX_LISTED]
        more = (
            f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        )
        head = f"{path}: {len(problems)} problem(s):\n  " if len(problems) > 1 else ""
        raise TraceError(head + "\n  ".join(shown) + more)
    if not levels:
        raise TraceError(f"{path}: no rows (header only): nothing to fit or compare")
    seen = [lv.level for lv in levels]
    dup = sorted({x for x in seen if seen.count(x) > 1})
    if dup:
        raise TraceError(f"{path}: level(s) {dup} appear twice ({lc})")
    return PERF_LEVEL_COLUMNS[lc], sorted(levels, key=lambda lv: lv.level)


class PerfRunSpec(_M):
    """The hand-written YAML beside a perf_analyzer CSV (``kind: PerfAnalyzerRun``)."""

    apiVersion: Literal["kisim/v1"]
    kind: Literal["PerfAnalyzerRun"]
    name: str = Field(min_length=1)
    csv: str = Field(description="The perf_analyzer -f CSV, relative to this file.")
    source: str = Field("", description="Where the CSV came from (URL, repository, command).")
    recorded_at: str = ""
    client_batch_size: int = Field(1, ge=1, description="perf_analyzer -b.")
    request_distribution: Literal["constant", "poisson"] = Field(
        "constant", description="perf_analyzer --request-distribution (request-rate runs)."
    )
    measurement_s: float = Field(5.0, gt=0, description="--measurement-interval, s.")
    model: ModelInfo
    hardware: Hardware = Field(default_factory=Hardware)
    triton: TritonInfo = Field(default_factory=TritonInfo)
    pool: BundlePool


@dataclass
class PerfRun:
    path: Path  # the YAML
    spec: PerfRunSpec
    mode: str  # concurrency | request_rate
    levels: list[PerfLevel]
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name


def is_perf_run(path: Path | str) -> bool:
    """A perf run's YAML, or a folder holding ``perf_run.yaml``."""
    p = Path(path)
    if p.is_dir():
        return (p / "perf_run.yaml").is_file()
    if p.suffix not in (".yaml", ".yml") or not p.is_file():
        return False
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return False
    return isinstance(doc, dict) and doc.get("kind") == "PerfAnalyzerRun"


def load_perf_run(path: Path | str) -> PerfRun:
    """Read a perf run (its YAML, or a folder with ``perf_run.yaml``) and its CSV."""
    p = Path(path)
    if p.is_dir():
        p = p / "perf_run.yaml"
    if not p.is_file():
        raise TraceError(f"{p}: missing (a perf run's YAML, kind: PerfAnalyzerRun)")
    warnings: list[str] = []
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TraceError(f"{p}: not a text (UTF-8) file") from None
    spec = validate_all(PerfRunSpec, load_yaml_mapping(p, text), text, p, warnings)
    bmax = spec.pool.batching.max_batch_size if spec.pool.batching.enabled else 1
    if spec.client_batch_size > max(bmax, 1) and spec.pool.batching.enabled:
        raise TraceError(
            f"{p}: client_batch_size {spec.client_batch_size} exceeds the pool's "
            f"max_batch_size {bmax}"
        )
    mode, levels = read_perf_csv(p.parent / spec.csv, spec.client_batch_size, warnings)
    for lv in levels:
        resid = lv.avg_ms - (lv.overhead_ms + lv.queue_ms + lv.exec_ms)
        if abs(resid) > 0.05 * lv.avg_ms + 0.05:
            warnings.append(
                f"{p.parent / spec.csv}: line {lv.line}: Avg latency {lv.avg_ms:.3f} ms is not "
                f"the sum of the components ({lv.avg_ms - resid:.3f} ms)"
            )
    return PerfRun(p, spec, mode, levels, warnings)


# --------------------------------------------------------------------------- calibration


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

PERF_METRICS: tuple[str, ...] = ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "queue_ms")


@dataclass
class PerfLevelCheck:
    run: str
    level: float
    util: float  # real: throughput x execution time / (instances x replicas)
    real: dict[str, float]
    twin: dict[str, float]  # mean over seeds

    def sre(self, m: str) -> float:
        r = self.real[m]
        den = max(abs(r), 1.0) if m == "queue_ms" else abs(r)
        return (self.twin[m] - r) / den if den > 0 else math.nan


@dataclass
class PerfValidation:
    config: str
    seeds: int
    levels: list[PerfLevelCheck]
    held_in: list[str]

    def summary(self) -> dict[str, Any]:
        from calibration.validate import BANDS

        def agg(items: list[PerfLevelCheck]) -> dict[str, Any]:
            d: dict[str, Any] = {"levels": len(items)}
            for m in PERF_METRICS:
                e = np.array([c.sre(m) for c in items])
                e = e[np.isfinite(e)]
                d[f"{m}_mape"] = float(np.mean(np.abs(e))) if len(e) else math.nan
                d[f"{m}_bias"] = float(np.mean(e)) if len(e) else math.nan
            return d

        return {
            "config": self.config,
            "seeds": self.seeds,
            **agg(self.levels),
            "bands": {
                name: agg([c for c in self.levels if lo <= c.util < hi]) for name, lo, hi in BANDS
            },
            "held_in": self.held_in,
            "per_level": [
                {"run": c.run, "level": c.level, "util": c.util, "real": c.real, "twin": c.twin}
                for c in self.levels
            ],
        }


def perf_scenario(run: PerfRun, cal: Calibration, level: float, duration_s: float,
                  window_s: float, device: str | None = None) -> Any:  # fmt: skip
    """A twin scenario holding one perf_analyzer level for `duration_s`: N users without
    think time (concurrency: a request is sent as soon as the previous answer arrives, all
    N from the start) or open-loop arrivals at the rate (constant or Poisson)."""
    from pydantic import ValidationError

    from kisim.core.config import Scenario
    from kisim.core.errors import ConfigError

    s, p = run.spec, run.spec.pool
    if s.client_batch_size != 1:
        raise ConfigError(
            f"{run.path}: client_batch_size {s.client_batch_size}: the twin sends one item per "
            "request; only -b 1 runs can be replayed (they can still be calibrated from)"
        )
    key = device or next((k for k, d in cal.devices.items() if d.kind == p.device), None)
    if key is None or key not in cal.devices:
        raise ConfigError(f"{run.path}: calibration {cal.name!r} has no {p.device} device")
    gpu = max(p.resources.gpu, 1) if p.device == "gpu" else 0
    conc = run.mode == "concurrency"
    traffic: dict[str, Any] = {
        "mode": "closed" if conc else "open",
        "pattern": {"name": "schedule", "params": {"points": [[0, level]]}},
    }
    if conc:
        traffic.update(wait_time_s=[0.0, 0.0], spawn_rate_users_s=1e6)
    else:
        traffic["arrival"] = (
            "deterministic" if s.request_distribution == "constant" else "exponential"
        )
    data = {
        "name": f"perf-{s.name}-{level:g}",
        "duration_s": duration_s,
        "window_s": window_s,
        "slo_ms": 100.0,
        "traffic": traffic,
        "routing": {"mode": "random", "placement": "balanced"},
        "pools": {
            "p": {
                "device": key, "replicas": p.replicas, "min_replicas": p.replicas,
                "max_replicas": p.replicas, "instances": p.instances,
                "resources": {"cpu": p.compute_cores, "memory_gib": p.resources.memory_gib,
                              "gpu": gpu},
                "batching": p.batching.model_dump(mode="json"),
            }
        },
        "cluster": {"nodes": [{"name": "n", "count": p.replicas,
                               "cpu": p.resources.cpu + 1.0,
                               "memory_gib": p.resources.memory_gib + 1.0,
                               "gpus": 1 if gpu else 0, "gpu_sharing": 1}]},
        "controller": {"name": "static"},
        "calibration": cal.model_dump(mode="json"),
    }  # fmt: skip
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(
            f"{run.path}: cannot be replayed: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        ) from None


def validate_perf(
    cal: Calibration,
    runs: list[PerfRun],
    seeds: int = 5,
    measure_s: float = 60.0,
    warmup_s: float = 10.0,
    config: str = "",
    device: str | None = None,
) -> PerfValidation:
    """Each level of each run in the twin: `warmup_s` not compared, then `measure_s`
    measured (a window of its own), `seeds` seeds; throughput, p50/p95/p99 and the queue
    wait per level against the CSV's (p90 is not in the twin's windows)."""
    from calibration.validate import _provenance_list
    from kisim.env.episode import run_windows, twin_backend

    fitted_on = _provenance_list(cal, "fitted-on")
    checks: list[PerfLevelCheck] = []
    for run in runs:
        p = run.spec.pool
        for lv in run.levels:
            window = math.gcd(int(round(warmup_s)), int(round(measure_s))) or 1
            sc = perf_scenario(run, cal, lv.level, warmup_s + measure_s, float(window), device)
            acc: dict[str, list[float]] = {m: [] for m in PERF_METRICS}
            for seed in range(seeds):
                ep = run_windows(twin_backend(), sc, seed)
                ws = [w for w in ep.windows if w.t_start >= warmup_s - 1e-9]
                served = sum(w.served for w in ws)
                if not served:
                    continue
                acc["throughput_rps"].append(served / sum(w.t_end - w.t_start for w in ws))
                lats = np.array([w.latency_p50_ms for w in ws])
                wt = np.array([w.served for w in ws], float)
                # windows of one length and load: their percentiles averaged by completions
                acc["p50_ms"].append(float(np.average(lats, weights=wt)))
                acc["p95_ms"].append(float(np.average([w.latency_p95_ms for w in ws], weights=wt)))
                acc["p99_ms"].append(float(np.average([w.latency_p99_ms for w in ws], weights=wt)))
                acc["queue_ms"].append(float(np.average([w.queue_wait_ms for w in ws], weights=wt)))
            twin = {m: float(np.mean(v)) if v else math.nan for m, v in acc.items()}
            real = {"throughput_rps": lv.throughput_rps, "p50_ms": lv.p50_ms,
                    "p95_ms": lv.p95_ms, "p99_ms": lv.p99_ms, "queue_ms": lv.queue_ms}  # fmt: skip
            util = min(lv.throughput_rps * lv.exec_ms / 1e3 / (p.instances * p.replicas), 1.0)
            checks.append(PerfLevelCheck(run.name, lv.level, util, real, twin))
    held = [r.name for r in runs if r.name in fitted_on]
    return PerfValidation(config, seeds, checks, held)


def perf_validation_md(v: PerfValidation) -> str:
    s = v.summary()
    out = [f"# Twin vs perf_analyzer ({v.config}, {v.seeds} seeds)", ""]
    out += ["MAPE and signed bias ((twin - real) / real: latency > 0 = the twin is too slow, "
            "throughput < 0 = it serves too little), per utilisation band of the level:", "",
            "| levels | n | throughput | p50 | p95 | p99 | queue | bias throughput | bias p50 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip

    def row(name: str, d: dict[str, Any]) -> str:
        f = lambda x: "–" if not math.isfinite(x) else f"{100 * x:.1f} %"  # noqa: E731
        return (f"| {name} | {d['levels']} | {f(d['throughput_rps_mape'])} | {f(d['p50_ms_mape'])} "
                f"| {f(d['p95_ms_mape'])} | {f(d['p99_ms_mape'])} | {f(d['queue_ms_mape'])} | "
                f"{f(d['throughput_rps_bias'])} | {f(d['p50_ms_bias'])} |")  # fmt: skip

    out.append(row("all", s))
    for name, d in s["bands"].items():
        out.append(row(f"utilisation {name}", d))
    out += ["", "| run | level | util | req/s real / twin | p50 real / twin | p99 real / twin |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for c in v.levels:
        out.append(
            f"| {c.run} | {c.level:g} | {100 * c.util:.0f} % | {c.real['throughput_rps']:.1f} / "
            f"{c.twin['throughput_rps']:.1f} | {c.real['p50_ms']:.2f} / {c.twin['p50_ms']:.2f} | "
            f"{c.real['p99_ms']:.2f} / {c.twin['p99_ms']:.2f} |"
        )
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- commands


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

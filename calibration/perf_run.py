"""Reading a perf_analyzer run: its CSV (`-f FILE --verbose-csv`) and the hand-written
`perf_run.yaml` beside it (calibration/perf_analyzer.py says how they are used)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field

from calibration.manifest import (
    _M,
    BundlePool,
    Hardware,
    ModelInfo,
    TritonInfo,
    load_yaml_mapping,
    validate_all,
)
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



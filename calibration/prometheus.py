"""The Prometheus part of a bundle: `query_range` answers of Triton's counters, as increments.

``prometheus/<metric>.json`` holds the raw JSON answer of ``/api/v1/query_range`` for one
series family; ``prometheus/index.json`` names each file's query and step. Counters must
be exported raw (cumulative), not through ``rate()``/``increase()``: the fits need the
increments between samples, and a counter that drops is a restart (as ``increase()``
treats it). Every series is attributed to a manifest pool by its ``pool`` label (or to
the only pool).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from calibration.locate import json_position, where
from kisim.core.errors import TraceError

if TYPE_CHECKING:
    from calibration.manifest import Manifest

# Triton series the fits need (an error when missing) and those they use when present.
REQUIRED_METRICS: tuple[str, ...] = (
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_queue_duration_us",
)
OPTIONAL_METRICS: tuple[str, ...] = (
    "nv_inference_request_success",
    "nv_inference_request_duration_us",
    "nv_inference_pending_request_count",
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
)
GAUGES = frozenset({"nv_inference_pending_request_count", "container_memory_working_set_bytes"})


@dataclass
class Series:
    """One label set of one metric: samples of a `query_range` answer."""

    metric: str
    labels: dict[str, str]
    t: np.ndarray
    v: np.ndarray

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        """Identity of the target across metrics (labels without the metric name)."""
        return tuple(sorted((k, v) for k, v in self.labels.items() if k != "__name__"))

    @property
    def replica(self) -> str:
        for k in ("replica", "pod", "instance"):
            if k in self.labels:
                return self.labels[k]
        return ",".join(f"{k}={v}" for k, v in self.key)


@dataclass
class PromExport:
    series: dict[str, list[Series]]  # metric -> series (pool attributed)
    pool_of: dict[int, str]  # id(series) -> pool
    step_s: float | None

    def of(self, metric: str, pool: str) -> list[Series]:
        return [s for s in self.series.get(metric, []) if self.pool_of[id(s)] == pool]


_DUR = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")


def _step_seconds(v: Any) -> float | None:
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        m = _DUR.match(v.strip())
        if m:
            return (
                float(m.group(1))
                * {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}[m.group(2)]
            )
    return None


def _read_json(path: Path) -> tuple[Any, str]:
    text = path.read_text()
    try:
        return json.loads(text), text
    except json.JSONDecodeError as e:
        raise TraceError(
            f"{path}: line {e.lineno}, column {e.colno}: not valid JSON ({e.msg})"
        ) from None


def _read_index(d: Path, warnings: list[str]) -> dict[str, dict[str, Any]]:
    """prometheus/index.json: {file or metric: {query, step, ...}} or a list of such entries."""
    path = d / "index.json"
    if not path.is_file():
        warnings.append(f"{path}: missing; queries unknown, series taken from the file names")
        return {}
    data, text = _read_json(path)
    entries: dict[str, dict[str, Any]] = {}
    if isinstance(data, dict) and isinstance(data.get("queries"), list | dict):
        data = data["queries"]
    if isinstance(data, dict):
        items = list(data.items())
        for name, e in items:
            if not isinstance(e, dict):
                raise TraceError(
                    f"{where(path, json_position(text, [name]))}: expected an object "
                    "with the query and step"
                )
            entries[Path(name).stem] = e
    elif isinstance(data, list):
        for i, e in enumerate(data):
            name = e.get("file") or e.get("metric") if isinstance(e, dict) else None
            if not name:
                raise TraceError(
                    f"{where(path, json_position(text, [i]))}: entry without `file` or `metric`"
                )
            entries[Path(str(name)).stem] = e
    else:
        raise TraceError(f"{path}: expected an object or a list")
    return entries


def _check_query(metric: str, entry: dict[str, Any], path: Path) -> None:
    q = str(entry.get("query", ""))
    if metric in GAUGES or not q:
        return
    if re.search(r"\b(rate|irate|increase|delta|deriv|avg_over_time)\s*\(", q):
        raise TraceError(
            f"{path}: {metric}: the query {q!r} is not the raw counter; "
            "calibration needs the cumulative series (e.g. `nv_inference_count`)"
        )


def _parse_matrix(path: Path, metric: str) -> list[Series]:
    data, text = _read_json(path)

    def bad(loc: list[str | int], msg: str) -> TraceError:
        return TraceError(f"{where(path, json_position(text, loc))}: {msg}")

    if not isinstance(data, dict) or data.get("status") != "success":
        err = data.get("error") if isinstance(data, dict) else None
        raise bad(["status"], f"not a successful query_range answer ({err or 'status != success'})")
    d = data.get("data")
    if not isinstance(d, dict) or d.get("resultType") != "matrix":
        raise bad(
            ["data", "resultType"], "expected data.resultType 'matrix' (a query_range answer)"
        )
    res = d.get("result")
    if not isinstance(res, list):
        raise bad(["data", "result"], "expected a list of series")
    out: list[Series] = []
    for i, s in enumerate(res):
        if not isinstance(s, dict) or not isinstance(s.get("metric"), dict):
            raise bad(["data", "result", i], "expected {metric: {...}, values: [...]}")
        vals = s.get("values")
        if not isinstance(vals, list):
            raise bad(["data", "result", i], "series without `values`")
        t = np.empty(len(vals))
        v = np.empty(len(vals))
        for j, pair in enumerate(vals):
            loc: list[str | int] = ["data", "result", i, "values", j]
            if not isinstance(pair, list) or len(pair) != 2:
                raise bad(loc, 'expected [unix_time, "value"]')
            try:
                t[j] = float(pair[0])
                v[j] = float(pair[1])
            except (TypeError, ValueError):
                raise bad(loc, f"not a number in {pair!r}") from None
            if j and t[j] <= t[j - 1]:
                raise bad([*loc, 0], "sample times must increase")
        good = np.isfinite(v)
        labels = {str(k): str(x) for k, x in s["metric"].items()}
        out.append(Series(metric, labels, t[good], v[good]))
    return out


def read_prometheus(d: Path, manifest: Manifest, warnings: list[str]) -> PromExport:
    if not d.is_dir():
        raise TraceError(f"{d}: missing (the Prometheus export: {', '.join(REQUIRED_METRICS)})")
    index = _read_index(d, warnings)
    files = {p.stem: p for p in sorted(d.glob("*.json")) if p.name != "index.json"}
    for name in index:
        if name not in files:
            raise TraceError(
                f"{d / 'index.json'}: lists {name!r} but {d / (name + '.json')} is missing"
            )
    missing = [m for m in REQUIRED_METRICS if m not in files]
    if missing:
        raise TraceError(
            f"{d}: metric(s) missing from the Prometheus export: {', '.join(missing)} "
            f"(found: {', '.join(files) or 'nothing'})"
        )
    for m in OPTIONAL_METRICS:
        if m not in files and m.startswith("nv_"):
            warnings.append(f"{d}: no {m}.json; the fits that use it are skipped")
    steps = [
        s for s in (_step_seconds(e.get("step", e.get("step_s"))) for e in index.values()) if s
    ]
    pools = set(manifest.pools)
    series: dict[str, list[Series]] = {}
    pool_of: dict[int, str] = {}
    for metric, path in files.items():
        if metric not in index and index:
            warnings.append(f"{path}: not listed in index.json; read anyway")
        if metric in index:
            _check_query(metric, index[metric], d / "index.json")
        got = _parse_matrix(path, metric)
        if not got and metric in REQUIRED_METRICS:
            raise TraceError(f"{path}: {metric} has no series (empty result): the export is empty")
        for s in got:
            p = s.labels.get("pool")
            if p is None:
                if len(pools) > 1:
                    raise TraceError(
                        f"{path}: a series without a `pool` label ({s.labels}) in a "
                        f"bundle with pools {', '.join(sorted(pools))}"
                    )
                p = next(iter(pools))
            if p not in pools:
                raise TraceError(
                    f"{path}: series of pool {p!r}, which manifest.yaml does not have "
                    f"({', '.join(sorted(pools))})"
                )
            pool_of[id(s)] = p
        series[metric] = got
    return PromExport(series, pool_of, min(steps) if steps else None)


# --------------------------------------------------------------------------- counters


@dataclass
class CounterTable:
    """Increments of the Triton counters of one pool, per replica series, on common samples.

    ``inc[metric][r]`` holds the increments of series `r` over (t[r][k-1], t[r][k]]; a
    drop of a cumulative counter is a restart and counts the new value (as ``increase()``).
    """

    pool: str
    replicas: list[str]
    t: list[np.ndarray]  # per replica: end times of the increments
    dt: list[np.ndarray]
    inc: dict[str, list[np.ndarray]]

    def total(self, metric: str) -> float:
        return float(sum(x.sum() for x in self.inc.get(metric, [])))

    def window_sums(self, a: float, b: float, metrics: tuple[str, ...]) -> dict[str, float]:
        """Sum over replicas of increments whose end time lies in (a, b]."""
        out = {m: 0.0 for m in metrics}
        for r, t in enumerate(self.t):
            m = (t > a) & (t <= b)
            for name in metrics:
                if name in self.inc:
                    out[name] += float(self.inc[name][r][m].sum())
        return out


def _increments(v: np.ndarray) -> np.ndarray:
    d = np.diff(v)
    reset = d < 0
    d[reset] = v[1:][reset]
    return d


def counter_table(prom: PromExport, pool: str, a: float, b: float) -> CounterTable | None:
    """Counters of `pool` restricted to samples in [a - step, b + step] (None if no series)."""
    metrics = [
        m
        for m in (*REQUIRED_METRICS, *OPTIONAL_METRICS)
        if m in prom.series and m not in GAUGES and not m.startswith("container_")
    ]
    base = {s.key: s for s in prom.of("nv_inference_count", pool)}
    if not base:
        return None
    pad = prom.step_s or 0.0
    reps: list[str] = []
    ts: list[np.ndarray] = []
    dts: list[np.ndarray] = []
    inc: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for key, s0 in base.items():
        by_m = {m: next((s for s in prom.of(m, pool) if s.key == key), None) for m in metrics}
        common = s0.t
        for s in by_m.values():
            if s is not None:
                common = np.intersect1d(common, s.t)
        common = common[(common >= a - pad - 1e-9) & (common <= b + pad + 1e-9)]
        if len(common) < 2:
            continue
        reps.append(s0.replica)
        ts.append(common[1:])
        dts.append(np.diff(common))
        for m, s in by_m.items():
            if s is None:
                inc[m].append(np.zeros(len(common) - 1))
            else:
                inc[m].append(_increments(s.v[np.searchsorted(s.t, common)]))
    if not reps:
        return None
    return CounterTable(pool, reps, ts, dts, {m: x for m, x in inc.items() if x})

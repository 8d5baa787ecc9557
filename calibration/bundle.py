"""Trace-bundle readers (docs/bundle-format.md): every file checked, every error located.

`load_bundle(path)` reads a bundle folder and returns a `Bundle`. A malformed file raises
`TraceError` naming the file, line and column (and the CSV column's name); a missing
required file or a metric missing from the Prometheus export raises `TraceError` naming
it; a manifest that contradicts the data (a pool with no requests, requests outside
``start_unix_s..end_unix_s``, series of a pool the manifest does not have, batches larger
than the batching config allows) is an error, or — when a few rows can be dropped
without changing the picture — a warning in `Bundle.warnings` that says what was skipped.
Nothing is ever fitted on nothing.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from calibration.locate import where, yaml_position
from calibration.prometheus import (
    CounterTable,
    PromExport,
    counter_table,
    read_prometheus,
)
from kisim.config import BatchingConfig
from kisim.errors import TraceError

# The format's events, plus `failed` (a replica that never became ready; not fitted).
EVENTS = ("created", "started", "ready", "stopping", "stopped", "failed")
EVENT_ALIASES = {"terminated": "stopped"}  # bridge.lifecycle's name for `stopped`
# Requests may start a little before start_unix_s (clock granularity) and may complete after.
EDGE_TOLERANCE_S = 1.0
# More than this share of requests outside the bundle's span is a contradiction, not noise.
MAX_OUTSIDE_SHARE = 0.05


# --------------------------------------------------------------------------- manifest


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelInfo(_M):
    name: str
    format: str = ""
    input_shape: list[int] = Field(default_factory=list)


class Hardware(_M):
    description: str = ""
    cpu_model: str | None = None
    gpu_model: str | None = None


class TritonInfo(_M):
    version: str = ""
    backend: str = ""


class BundleResources(_M):
    cpu: float = Field(gt=0)
    memory_gib: float = Field(4.0, gt=0)
    gpu: int = Field(0, ge=0)


class BundlePool(_M):
    device: Literal["cpu", "gpu"]
    replicas: int = Field(ge=1)
    instances: int = Field(1, ge=1)
    resources: BundleResources
    batching: BatchingConfig


class BundleRouting(_M):
    mode: Literal["random", "round_robin"] = "random"
    placement: Literal["prefer-gpu", "balanced", "prefer-cpu"] = "balanced"


class SchedulePoint(_M):
    t_s: float = Field(ge=0)
    users: float | None = Field(None, ge=0)
    rate: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one(self) -> SchedulePoint:
        if (self.users is None) == (self.rate is None):
            raise ValueError("give exactly one of users (closed loop) or rate (open loop)")
        return self

    @property
    def level(self) -> float:
        return float(self.users if self.users is not None else self.rate)  # type: ignore[arg-type]


class BundleTraffic(_M):
    mode: Literal["closed", "open"] = "closed"
    wait_time_s: tuple[float, float] = (0.5, 1.5)
    schedule: list[SchedulePoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> BundleTraffic:
        if self.wait_time_s[0] < 0 or self.wait_time_s[0] > self.wait_time_s[1]:
            raise ValueError("wait_time_s: need 0 <= min <= max")
        ts = [p.t_s for p in self.schedule]
        if any(b <= a for a, b in zip(ts, ts[1:], strict=False)):
            raise ValueError("schedule: t_s must increase")
        key = "users" if self.mode == "closed" else "rate"
        if any(getattr(p, key) is None for p in self.schedule):
            raise ValueError(f"schedule: a {self.mode}-loop schedule gives `{key}` in every row")
        return self


class Manifest(_M):
    apiVersion: Literal["kisim/v1"]
    kind: Literal["TraceBundle"]
    name: str = Field(min_length=1)
    recorded_at: str
    backend: Literal["local", "kubernetes"]
    start_unix_s: float
    end_unix_s: float
    model: ModelInfo
    hardware: Hardware = Field(default_factory=Hardware)
    triton: TritonInfo = Field(default_factory=TritonInfo)
    pools: dict[Literal["gpu", "cpu"], BundlePool] = Field(min_length=1)
    routing: BundleRouting = Field(default_factory=BundleRouting)
    traffic: BundleTraffic

    @field_validator("recorded_at", mode="before")
    @classmethod
    def _date(cls, v: Any) -> Any:
        return v.isoformat() if isinstance(v, datetime) else v

    @model_validator(mode="after")
    def _span(self) -> Manifest:
        if not self.end_unix_s > self.start_unix_s:
            raise ValueError("end_unix_s must be after start_unix_s")
        return self

    @property
    def duration_s(self) -> float:
        return self.end_unix_s - self.start_unix_s


def read_manifest(path: Path) -> Manifest:
    if not path.is_file():
        raise TraceError(f"{path}: missing (every bundle has a manifest.yaml)")
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        pos = (mark.line + 1, mark.column + 1) if mark else None
        raise TraceError(
            f"{where(path, pos)}: not valid YAML ({getattr(e, 'problem', e)})"
        ) from None
    if not isinstance(data, dict):
        raise TraceError(f"{path}: expected a mapping at the top level")
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = [p for p in first["loc"] if not str(p).startswith("function-after")]
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown key (docs/bundle-format.md lists the keys)"
        more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise TraceError(
            f"{where(path, yaml_position(text, loc))}: {dotted}: {msg}{more}"
        ) from None


# --------------------------------------------------------------------------- CSV files


class _Csv:
    """A CSV file read row by row with named, located errors."""

    def __init__(
        self, path: Path, required: tuple[str, ...], aliases: dict[str, str] | None = None
    ):
        self.path = path
        self._f = path.open(newline="")
        self._r = csv.reader(self._f)
        header = next(self._r, None)
        if header is None:
            self._f.close()
            raise TraceError(f"{path}: empty file (expected a header: {','.join(required)})")
        header = [h.strip() for h in header]
        for a, canonical in (aliases or {}).items():
            if a in header and canonical not in header:
                header[header.index(a)] = canonical
        missing = [c for c in required if c not in header]
        if missing:
            self._f.close()
            raise TraceError(
                f"{path}: line 1: header lacks column(s) {', '.join(missing)} "
                f"(expected {','.join(required)})"
            )
        self.header = header
        self.idx = {c: header.index(c) for c in header}

    def rows(self):  # type: ignore[no-untyped-def]
        try:
            for row in self._r:
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(self.header):
                    raise TraceError(
                        f"{self.path}: line {self._r.line_num}: {len(row)} fields, "
                        f"the header has {len(self.header)}"
                    )
                yield self._r.line_num, row
        except csv.Error as e:
            raise TraceError(f"{self.path}: line {self._r.line_num}: {e}") from None
        finally:
            self._f.close()

    def err(self, line: int, col: str, msg: str) -> TraceError:
        return TraceError(f"{self.path}: line {line}, column {self.idx[col] + 1} ({col}): {msg}")

    def num(
        self,
        line: int,
        row: list[str],
        col: str,
        *,
        lo: float | None = None,
        positive: bool = False,
    ) -> float:
        raw = row[self.idx[col]].strip()
        try:
            v = float(raw)
        except ValueError:
            raise self.err(line, col, f"not a number: {raw!r}") from None
        if not math.isfinite(v):
            raise self.err(line, col, f"not finite: {raw!r}")
        if positive and v <= 0:
            raise self.err(line, col, f"must be > 0, got {raw}")
        if lo is not None and v < lo:
            raise self.err(line, col, f"must be >= {lo:g}, got {raw}")
        return v

    def text(self, line: int, row: list[str], col: str) -> str:
        return row[self.idx[col]].strip()


@dataclass
class Requests:
    """requests.csv as arrays (one element per request)."""

    start: np.ndarray
    latency_ms: np.ndarray
    ok: np.ndarray  # bool
    pool: np.ndarray  # str
    replica: np.ndarray  # str ('' when unknown)

    @property
    def done(self) -> np.ndarray:
        """Client-side completion times, unix s."""
        return self.start + self.latency_ms * 1e-3

    def select(self, mask: np.ndarray) -> Requests:
        return Requests(
            self.start[mask],
            self.latency_ms[mask],
            self.ok[mask],
            self.pool[mask],
            self.replica[mask],
        )

    def __len__(self) -> int:
        return len(self.start)


def read_requests(path: Path, pools: set[str]) -> Requests:
    if not path.is_file():
        raise TraceError(f"{path}: missing (every bundle has a requests.csv)")
    c = _Csv(path, ("start_unix_s", "latency_ms", "ok", "pool"), aliases={"endpoint": "replica"})
    start: list[float] = []
    lat: list[float] = []
    ok: list[bool] = []
    pool: list[str] = []
    rep: list[str] = []
    has_rep = "replica" in c.idx
    for line, row in c.rows():
        start.append(c.num(line, row, "start_unix_s", positive=True))
        lat.append(c.num(line, row, "latency_ms", lo=0.0))
        o = c.text(line, row, "ok").lower()
        if o not in ("1", "0", "true", "false"):
            raise c.err(line, "ok", f"expected 1 or 0, got {o!r}")
        ok.append(o in ("1", "true"))
        p = c.text(line, row, "pool")
        if p not in pools and not (p == "" and not ok[-1]):  # a failure may have no pool
            raise c.err(
                line,
                "pool",
                f"pool {p!r} is not in manifest.yaml's pools ({', '.join(sorted(pools))})",
            )
        pool.append(p)
        rep.append(c.text(line, row, "replica") if has_rep else "")
    if not start:
        raise TraceError(f"{path}: no requests (header only): nothing to fit or compare")
    return Requests(
        np.asarray(start),
        np.asarray(lat),
        np.asarray(ok, dtype=bool),
        np.asarray(pool, dtype=object),
        np.asarray(rep, dtype=object),
    )


@dataclass
class ServiceTimes:
    """service_times.csv: isolated per-batch-size execution times."""

    device: np.ndarray  # str, as written (a device kind or a pool name)
    batch_size: np.ndarray  # int
    ms: np.ndarray
    path: Path | None = None


def read_service_times(path: Path, pools: dict[str, BundlePool]) -> ServiceTimes:
    c = _Csv(path, ("device", "batch_size", "repeat", "ms"))
    known = set(pools) | {p.device for p in pools.values()}
    dev: list[str] = []
    bs: list[int] = []
    ms: list[float] = []
    for line, row in c.rows():
        d = c.text(line, row, "device")
        if d not in known:
            raise c.err(
                line,
                "device",
                f"{d!r} is neither a pool nor a device of manifest.yaml "
                f"({', '.join(sorted(known))})",
            )
        b = c.num(line, row, "batch_size", lo=1)
        if b != int(b):
            raise c.err(line, "batch_size", f"not an integer: {b:g}")
        c.num(line, row, "repeat", lo=0)
        dev.append(d)
        bs.append(int(b))
        ms.append(c.num(line, row, "ms", positive=True))
    if not ms:
        raise TraceError(f"{path}: no rows (header only)")
    return ServiceTimes(np.asarray(dev, dtype=object), np.asarray(bs), np.asarray(ms), path)


@dataclass
class Events:
    """events.csv: replica lifecycle events."""

    t: np.ndarray
    pool: np.ndarray
    replica: np.ndarray
    event: np.ndarray

    def __len__(self) -> int:
        return len(self.t)


def read_events(path: Path, pools: set[str]) -> Events:
    c = _Csv(path, ("t_unix_s", "pool", "replica", "event"))
    t: list[float] = []
    pool: list[str] = []
    rep: list[str] = []
    ev: list[str] = []
    for line, row in c.rows():
        t.append(c.num(line, row, "t_unix_s", positive=True))
        p = c.text(line, row, "pool")
        if p not in pools:
            raise c.err(
                line,
                "pool",
                f"pool {p!r} is not in manifest.yaml's pools ({', '.join(sorted(pools))})",
            )
        pool.append(p)
        r = c.text(line, row, "replica")
        if not r:
            raise c.err(line, "replica", "empty")
        rep.append(r)
        e = c.text(line, row, "event")
        e = EVENT_ALIASES.get(e, e)
        if e not in EVENTS:
            raise c.err(line, "event", f"unknown event {e!r} (one of {', '.join(EVENTS)})")
        ev.append(e)
    return Events(
        np.asarray(t),
        np.asarray(pool, dtype=object),
        np.asarray(rep, dtype=object),
        np.asarray(ev, dtype=object),
    )


@dataclass
class LocustTotals:
    requests: int
    failures: int


def read_locust_stats(path: Path) -> LocustTotals:
    """The 'Aggregated' row of locust_stats.csv (a cross-check of requests.csv only)."""
    c = _Csv(path, ("Name", "Request Count", "Failure Count"))
    for line, row in c.rows():
        if c.text(line, row, "Name") == "Aggregated":
            return LocustTotals(
                int(c.num(line, row, "Request Count", lo=0)),
                int(c.num(line, row, "Failure Count", lo=0)),
            )
    raise TraceError(f"{path}: no 'Aggregated' row")


# --------------------------------------------------------------------------- the bundle


@dataclass
class Bundle:
    path: Path
    manifest: Manifest
    requests: Requests
    prom: PromExport
    counters: dict[str, CounterTable]
    events: Events | None
    service_times: ServiceTimes | None
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.manifest.name


def load_bundle(path: Path | str) -> Bundle:
    """Read and cross-check a bundle folder; `TraceError` on anything that cannot be used."""
    p = Path(path)
    if not p.is_dir():
        raise TraceError(f"{p}: not a bundle folder (no such directory)")
    if not any(p.iterdir()):
        raise TraceError(f"{p}: empty bundle folder")
    warnings: list[str] = []
    man = read_manifest(p / "manifest.yaml")
    pools = set(man.pools)
    req = read_requests(p / "requests.csv", pools)
    req = _check_request_span(p / "requests.csv", req, man, warnings)
    for pool in pools:
        if not np.any(req.pool == pool):
            raise TraceError(
                f"{p / 'manifest.yaml'}: pool {pool!r} served no request in "
                f"{p / 'requests.csv'}: the manifest contradicts the data"
            )
    prom = read_prometheus(p / "prometheus", man, warnings)
    counters: dict[str, CounterTable] = {}
    for pool, cfg in man.pools.items():
        ct = counter_table(prom, pool, man.start_unix_s, man.end_unix_s)
        if ct is None or ct.total("nv_inference_count") <= 0:
            raise TraceError(
                f"{p / 'prometheus'}: no counter increments for pool {pool!r} within "
                "start_unix_s..end_unix_s (are the sample times Unix seconds?)"
            )
        _check_batches(p, pool, cfg, ct, warnings)
        if len(ct.replicas) != cfg.replicas:
            warnings.append(
                f"{p / 'prometheus'}: pool {pool!r} has {len(ct.replicas)} replica "
                f"series, manifest.yaml says {cfg.replicas} replicas"
            )
        counters[pool] = ct
    events = None
    if (p / "events.csv").is_file():
        events = read_events(p / "events.csv", pools)
        if not len(events):
            warnings.append(
                f"{p / 'events.csv'}: no rows; start-up times not fitted from this bundle"
            )
            events = None
    else:
        warnings.append(f"{p / 'events.csv'}: missing; start-up times not fitted from this bundle")
    st = None
    if (p / "service_times.csv").is_file():
        st = read_service_times(p / "service_times.csv", man.pools)
    else:
        warnings.append(
            f"{p / 'service_times.csv'}: missing; the service curve comes from the "
            "Triton counters alone"
        )
    _cross_check_locust(p, req, warnings)
    return Bundle(p, man, req, prom, counters, events, st, warnings)


def _check_request_span(path: Path, req: Requests, man: Manifest, warnings: list[str]) -> Requests:
    inside = (req.start >= man.start_unix_s - EDGE_TOLERANCE_S) & (req.start <= man.end_unix_s)
    n_out = int(np.count_nonzero(~inside))
    if n_out == 0:
        return req
    share = n_out / len(req)
    if share > MAX_OUTSIDE_SHARE:
        raise TraceError(
            f"{path}: {n_out} of {len(req)} requests ({share:.0%}) start outside "
            f"manifest.yaml's start_unix_s..end_unix_s ({man.start_unix_s:.3f}.."
            f"{man.end_unix_s:.3f}): the manifest contradicts the data"
        )
    warnings.append(f"{path}: skipped {n_out} request(s) starting outside start_unix_s..end_unix_s")
    return req.select(inside)


def _check_batches(
    p: Path, pool: str, cfg: BundlePool, ct: CounterTable, warnings: list[str]
) -> None:
    items, execs = ct.total("nv_inference_count"), ct.total("nv_inference_exec_count")
    if execs <= 0:
        raise TraceError(
            f"{p / 'prometheus'}: pool {pool!r}: nv_inference_count grew but "
            "nv_inference_exec_count did not"
        )
    bmax = cfg.batching.max_batch_size if cfg.batching.enabled else 1
    worst = 0.0
    for r in range(len(ct.replicas)):
        n, e = ct.inc["nv_inference_count"][r], ct.inc["nv_inference_exec_count"][r]
        ok = e >= 5  # a scrape can split a batch's count and exec increments
        if np.any(ok):
            worst = max(worst, float((n[ok] / e[ok]).max()))
    if items / execs > bmax * 1.01 or worst > bmax * 1.1 + 0.5:
        raise TraceError(
            f"{p / 'manifest.yaml'}: pools.{pool}.batching allows batches of at most "
            f"{bmax}, but the counters show a mean batch size of {items / execs:.2f} "
            f"(up to {worst:.2f} in one interval): the manifest contradicts the data"
        )


def _cross_check_locust(p: Path, req: Requests, warnings: list[str]) -> None:
    f = p / "locust_stats.csv"
    if not f.is_file():
        warnings.append(f"{f}: missing; requests.csv not cross-checked against Locust's totals")
        return
    tot = read_locust_stats(f)
    n = len(req)
    if abs(tot.requests - n) > max(10, 0.02 * n):
        warnings.append(f"{f}: Locust counted {tot.requests} requests, requests.csv has {n}")

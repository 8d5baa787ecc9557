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

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from calibration.manifest import BundlePool, Manifest, read_manifest
from calibration.prometheus import (
    CounterTable,
    PromExport,
    counter_table,
    read_prometheus,
)
from calibration.trace_files import (
    Events,
    Requests,
    ServiceTimes,
    read_events,
    read_locust_stats,
    read_requests,
    read_service_times,
)
from kisim.core.errors import TraceError

__all__ = ["Bundle", "BundlePool", "Events", "Manifest", "Requests", "ServiceTimes", "load_bundle"]

# Requests may start a little before start_unix_s (clock granularity) and may complete after.
EDGE_TOLERANCE_S = 1.0
# More than this share of requests outside the bundle's span is a contradiction, not noise.
MAX_OUTSIDE_SHARE = 0.05


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

    @property
    def experiment(self) -> str:
        """What makes two recordings the same experiment: backend, model, pools, routing and
        the planned users schedule (the manifest without its name and times), as JSON."""
        keep = {"backend", "model", "pools", "routing", "traffic"}
        return json.dumps(self.manifest.model_dump(mode="json", include=keep), sort_keys=True)

    @property
    def experiment_id(self) -> str:
        """A short digest of `experiment`, for provenance lines."""
        return hashlib.sha256(self.experiment.encode()).hexdigest()[:12]


def load_bundle(path: Path | str) -> Bundle:
    """Read and cross-check a bundle folder; `TraceError` on anything that cannot be used."""
    p = Path(path)
    if not p.is_dir():
        raise TraceError(f"{p}: not a bundle folder (no such directory)")
    if not any(p.iterdir()):
        raise TraceError(f"{p}: empty bundle folder")
    warnings: list[str] = []
    from calibration.locust_prom import CACHE, import_bundle, is_import

    if is_import(p):  # Locust CSVs + Prometheus exports + import.yaml: made a bundle first
        p = import_bundle(p, p / CACHE, warnings)
    man = read_manifest(p / "manifest.yaml", warnings)
    pools = set(man.pools)
    problems: list[str] = []  # every file's problems, reported together

    def attempt(read, *args):  # type: ignore[no-untyped-def]
        try:
            return read(*args)
        except TraceError as e:
            problems.append(str(e))
            return None

    req = attempt(read_requests, p / "requests.csv", pools)
    prom = attempt(read_prometheus, p / "prometheus", man, warnings)
    events = None
    if (p / "events.csv").is_file():
        events = attempt(read_events, p / "events.csv", pools)
        if events is not None and not len(events):
            warnings.append(
                f"{p / 'events.csv'}: no rows; start-up times not fitted from this bundle"
            )
            events = None
    else:
        warnings.append(f"{p / 'events.csv'}: missing; start-up times not fitted from this bundle")
    st = None
    if (p / "service_times.csv").is_file():
        st = attempt(read_service_times, p / "service_times.csv", man.pools)
    else:
        warnings.append(
            f"{p / 'service_times.csv'}: missing; the service curve comes from the "
            "Triton counters alone"
        )
    if problems:
        raise TraceError(problems[0] if len(problems) == 1 else "\n".join(problems))
    assert req is not None and prom is not None
    req = _check_request_span(p / "requests.csv", req, man, warnings)
    for pool in pools:
        if not np.any(req.pool == pool):
            raise TraceError(
                f"{p / 'manifest.yaml'}: pool {pool!r} served no request in "
                f"{p / 'requests.csv'}: the manifest contradicts the data"
            )
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


def recorded_positive(bundle: Bundle, section: str, key: str) -> float | None:
    """A positive number `kisim record` wrote in the bundle's `recording.yaml` at
    `section.key`; None where the file, the key or a usable value is missing."""
    path = bundle.path / "recording.yaml"
    if not path.is_file():
        return None
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return None
    part = doc.get(section) if isinstance(doc, dict) else None
    value = part.get(key) if isinstance(part, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        return None
    return float(value)

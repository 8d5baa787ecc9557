"""The bundle's CSV files (requests, isolated service times, events, Locust totals), read
row by row: a malformed cell is an error naming the file, the line and the column."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.manifest import BundlePool
from kisim.core.errors import TraceError

# The format's events, plus `failed` (a replica that never became ready; not fitted).
EVENTS = ("created", "started", "ready", "stopping", "stopped", "failed")
EVENT_ALIASES = {"terminated": "stopped"}  # bridge.lifecycle's name for `stopped`
MAX_LISTED = 20  # problems listed per file; the rest are counted


class _Csv:
    """A CSV file read row by row with named, located errors."""

    def __init__(
        self, path: Path, required: tuple[str, ...], aliases: dict[str, str] | None = None
    ):
        self.path = path
        self._f = path.open(newline="")
        self._r = csv.reader(self._f)
        try:
            header = next(self._r, None)
        except (csv.Error, UnicodeDecodeError) as e:
            self._f.close()
            raise TraceError(f"{path}: line 1: not a readable CSV header ({e})") from None
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
        self.problems: list[str] = []  # every bad cell of the file, reported together

    def bad(self, line: int, col: str, msg: str) -> None:
        """Record a bad cell and go on reading (`done` raises them all)."""
        self.problems.append(str(self.err(line, col, msg)))

    def done(self) -> None:
        """`TraceError` listing every problem found (at most `MAX_LISTED`, then a count)."""
        if not self.problems:
            return
        shown = self.problems[:MAX_LISTED]
        more = len(self.problems) - len(shown)
        tail = f"\n  ... and {more} more" if more else ""
        if len(self.problems) == 1:
            raise TraceError(shown[0])
        raise TraceError(
            f"{self.path}: {len(self.problems)} problem(s):\n  " + "\n  ".join(shown) + tail
        )

    def rows(self):  # type: ignore[no-untyped-def]
        try:
            for row in self._r:
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(self.header):
                    self.problems.append(
                        f"{self.path}: line {self._r.line_num}: {len(row)} fields, "
                        f"the header has {len(self.header)}"
                    )
                    continue
                yield self._r.line_num, row
        except (csv.Error, UnicodeDecodeError) as e:  # a binary or damaged file is input
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
            self.bad(line, col, f"not a number: {raw!r}")
            return math.nan
        if not math.isfinite(v):
            self.bad(line, col, f"not finite: {raw!r}")
        elif positive and v <= 0:
            self.bad(line, col, f"must be > 0, got {raw}")
        elif lo is not None and v < lo:
            self.bad(line, col, f"must be >= {lo:g}, got {raw}")
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
    # `pool` may be left out when the manifest has one pool: every request is that pool's
    only = next(iter(pools)) if len(pools) == 1 else None
    need = ("start_unix_s", "latency_ms", "ok") + (() if only else ("pool",))
    c = _Csv(path, need, aliases={"endpoint": "replica"})
    has_pool = "pool" in c.idx
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
            c.bad(line, "ok", f"expected 1 or 0, got {o!r}")
        ok.append(o in ("1", "true"))
        p = c.text(line, row, "pool") if has_pool else str(only)
        if p == "" and only is not None:
            p = only
        if p not in pools and not (p == "" and not ok[-1]):  # a failure may have no pool
            c.bad(
                line,
                "pool",
                f"pool {p!r} is not in manifest.yaml's pools ({', '.join(sorted(pools))})",
            )
        pool.append(p)
        rep.append(c.text(line, row, "replica") if has_rep else "")
    c.done()
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
    overhead_ms: np.ndarray | None = None  # client_ms - queue_ms - ms, when both columns exist


SUMMARY_COLUMNS = ("device", "batch_size", "n")  # + two of mean_ms, median_ms, p95_ms
Z95 = 1.6448536269514722  # standard normal 95 % quantile


def _is_summary(path: Path) -> bool:
    try:
        with path.open(newline="") as f:
            header = [h.strip() for h in next(csv.reader(f), [])]
    except (csv.Error, UnicodeDecodeError, OSError):
        return False  # the long-form reader names what is wrong with the file
    return "ms" not in header and all(c in header for c in SUMMARY_COLUMNS)


def read_service_times(path: Path, pools: dict[str, BundlePool]) -> ServiceTimes:
    """service_times.csv in the long form (one row per measured request) or in summary form
    (one row per batch size: `device,batch_size,n` and two of `mean_ms,median_ms,p95_ms`),
    which `_read_summary` turns into its lognormal's representative sample."""
    if _is_summary(path):
        return _read_summary(path, pools)
    c = _Csv(path, ("device", "batch_size", "repeat", "ms"))
    known = set(pools) | {p.device for p in pools.values()}
    dev: list[str] = []
    bs: list[int] = []
    ms: list[float] = []
    has_ovh = "client_ms" in c.idx and "queue_ms" in c.idx
    ovh: list[float] = []
    for line, row in c.rows():
        d = c.text(line, row, "device")
        if d not in known:
            c.bad(
                line,
                "device",
                f"{d!r} is neither a pool nor a device of manifest.yaml "
                f"({', '.join(sorted(known))})",
            )
        b = c.num(line, row, "batch_size", lo=1)
        if math.isfinite(b) and b != int(b):
            c.bad(line, "batch_size", f"not an integer: {b:g}")
        b = b if math.isfinite(b) and b >= 1 else 1
        c.num(line, row, "repeat", lo=0)
        dev.append(d)
        bs.append(int(b))
        ms.append(c.num(line, row, "ms", positive=True))
        if has_ovh:
            q = c.num(line, row, "queue_ms", lo=0.0)
            ovh.append(c.num(line, row, "client_ms", positive=True) - q - ms[-1])
    c.done()
    if not ms:
        raise TraceError(f"{path}: no rows (header only)")
    return ServiceTimes(
        np.asarray(dev, dtype=object),
        np.asarray(bs),
        np.asarray(ms),
        path,
        np.asarray(ovh) if has_ovh else None,
    )


def _read_summary(path: Path, pools: dict[str, BundlePool]) -> ServiceTimes:
    """Summary rows as the n-point representative sample of the lognormal they describe:
    exp(mu + sigma z_i), z_i the standard normal quantiles at (i + 1/2) / n. The sample has
    the row's median exactly, its mean and spread to within the quantile grid, and the fit
    treats it as n measurements — so a size's mean carries the uncertainty of n lognormal
    draws (sigma / sqrt(n)), where one row per size alone would carry none. sigma from
    median and p95 (ln(p95 / median) / 1.645), else median and mean (sigma^2 =
    2 ln(mean / median)), else mean and p95 (solved)."""
    from statistics import NormalDist

    c = _Csv(path, SUMMARY_COLUMNS)
    have = [k for k in ("mean_ms", "median_ms", "p95_ms") if k in c.idx]
    if len(have) < 2:
        raise TraceError(
            f"{path}: line 1: a summary needs two of mean_ms, median_ms, p95_ms "
            f"(has {', '.join(have) or 'none'})"
        )
    known = set(pools) | {p.device for p in pools.values()}
    dev: list[str] = []
    bs: list[int] = []
    ms: list[float] = []
    nd = NormalDist()
    for line, row in c.rows():
        d = c.text(line, row, "device")
        if d not in known:
            c.bad(line, "device", f"{d!r} is neither a pool nor a device of manifest.yaml "
                                  f"({', '.join(sorted(known))})")  # fmt: skip
        b = c.num(line, row, "batch_size", lo=1)
        n = c.num(line, row, "n", lo=2)
        v = {k: c.num(line, row, k, positive=True) for k in have}
        if not all(math.isfinite(x) for x in (b, n, *v.values())):
            continue
        if b != int(b) or n != int(n):
            c.bad(line, "batch_size" if b != int(b) else "n", "not an integer")
            continue
        med, mean, p95 = v.get("median_ms"), v.get("mean_ms"), v.get("p95_ms")
        if med is not None and p95 is not None:  # the robust pair first
            if p95 < med:
                c.bad(line, "p95_ms", f"below median_ms ({p95:g} < {med:g})")
                continue
            sigma = math.log(p95 / med) / Z95
        elif med is not None and mean is not None:
            if mean < med:
                c.bad(line, "mean_ms", f"below median_ms ({mean:g} < {med:g}): not lognormal")
                continue
            sigma = math.sqrt(2 * math.log(mean / med))
        else:
            assert mean is not None and p95 is not None
            # p95 / mean = exp(1.645 s - s^2 / 2): the root below s = 1.645
            r = math.log(p95 / mean)
            disc = Z95 * Z95 - 2 * r
            if r <= 0 or disc < 0:
                c.bad(line, "p95_ms", f"p95 {p95:g} and mean {mean:g} fit no lognormal")
                continue
            sigma = Z95 - math.sqrt(disc)
            med = mean * math.exp(-sigma * sigma / 2)
        mu = math.log(med)
        k = int(n)
        z = np.array([nd.inv_cdf((i + 0.5) / k) for i in range(k)])
        dev += [d] * k
        bs += [int(b)] * k
        ms += list(np.exp(mu + sigma * z))
    c.done()
    if not ms:
        raise TraceError(f"{path}: no rows (header only)")
    return ServiceTimes(np.asarray(dev, dtype=object), np.asarray(bs), np.asarray(ms), path, None)


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
            c.bad(
                line,
                "pool",
                f"pool {p!r} is not in manifest.yaml's pools ({', '.join(sorted(pools))})",
            )
        pool.append(p)
        r = c.text(line, row, "replica")
        if not r:
            c.bad(line, "replica", "empty")
        rep.append(r)
        e = c.text(line, row, "event")
        e = EVENT_ALIASES.get(e, e)
        if e not in EVENTS:
            c.bad(line, "event", f"unknown event {e!r} (one of {', '.join(EVENTS)})")
        ev.append(e)
    c.done()
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

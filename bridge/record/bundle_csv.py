"""The bundle's CSV files from what the run recorded: ``requests.csv`` (every request the
load generator sent), ``events.csv`` (replica lifecycle) and Locust's own ``locust_*.csv``."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from bridge.lifecycle import ReplicaEvent
from bridge.records import RequestLog
from kisim.core.errors import BackendError

LOCUST_CSVS = ("stats", "stats_history", "failures", "exceptions")  # exceptions: optional


def write_requests(path: Path, log: RequestLog, replica_of: dict[str, str], t0: float,
                   t_end: float) -> tuple[int, int]:  # fmt: skip
    """``requests.csv`` from the load generator's log; returns (requests, successful)."""
    n = ok = 0
    rows = sorted(zip(log.start, log.latency_ms, log.ok, log.pool, log.endpoint, strict=True))
    with path.open("w") as f:
        f.write("start_unix_s,latency_ms,ok,pool,replica\n")
        for s, lat, good, pool, ep in rows:
            if not t0 - 1e-6 <= s <= t_end:
                raise BackendError(f"request sent at {s:.3f}, outside the recording "
                                   f"[{t0:.3f}, {t_end:.3f}]")  # fmt: skip
            f.write(f"{s:.6f},{lat:.3f},{int(good)},{pool},{replica_of.get(ep, '')}\n")
            n += 1
            ok += int(good)
    if n == 0:
        raise BackendError("no requests were sent during the recording")
    return n, ok


def copy_locust(run_dir: Path | None, out: Path) -> None:
    """Locust's CSVs (with full history) from its run folder into the bundle."""
    for kind in LOCUST_CSVS:
        src = run_dir / f"locust_{kind}.csv" if run_dir is not None else None
        if src is None or not src.is_file():
            if kind == "exceptions":
                continue
            raise BackendError(f"load generator wrote no {src} (Locust CSVs)")
        shutil.copyfile(src, out / f"locust_{kind}.csv")


def write_events(path: Path, events: Iterable[ReplicaEvent], t_close: float) -> None:
    """created/started/ready/stopping/stopped per replica (started = created locally:
    the replica process is the container)."""
    rows: list[tuple[float, str, str, str]] = []
    stopping: set[str] = set()
    for e in events:
        if e.kind == "created":
            rows += [(e.t_unix, e.pool, e.replica, "created"),
                     (e.t_unix, e.pool, e.replica, "started")]  # fmt: skip
        elif e.kind == "ready":
            rows.append((e.t_unix, e.pool, e.replica, "ready"))
        elif e.kind == "stopping":
            stopping.add(e.replica)
            rows.append((e.t_unix, e.pool, e.replica, "stopping"))
        elif e.kind == "terminated":
            if e.replica not in stopping:  # stopped by close(): it began at t_close
                rows.append((min(t_close, e.t_unix), e.pool, e.replica, "stopping"))
                stopping.add(e.replica)
            rows.append((e.t_unix, e.pool, e.replica, "stopped"))
        elif e.kind == "failed":
            if not e.detail.startswith("crashed"):  # a crash under --inject is replaced
                raise BackendError(f"replica {e.replica} failed: {e.detail}")
            rows += [(e.t_unix, e.pool, e.replica, "failed"),
                     (e.t_unix, e.pool, e.replica, "stopping")]  # fmt: skip
            stopping.add(e.replica)
    rank = {k: i for i, k in enumerate(("created", "started", "ready", "failed", "stopping",
                                        "stopped"))}  # fmt: skip
    rows.sort(key=lambda r: (r[0], r[1], r[2], rank[r[3]]))  # lifecycle order at equal times
    path.write_text("t_unix_s,pool,replica,event\n"
                    + "".join(f"{t:.6f},{p},{r},{k}\n" for t, p, r, k in rows))  # fmt: skip


def write_faults(path: Path, events: Iterable[ReplicaEvent]) -> int:
    """``faults.csv`` of a recording with ``--inject``: each injected fault and its undo
    (t_unix_s, event fault|restored, target, detail); events.csv keeps the lifecycle
    vocabulary of docs/bundle-format.md. Returns the number of faults."""
    rows = sorted((e.t_unix, e.kind, e.replica, e.detail.replace(",", ";")) for e in events)
    path.write_text("t_unix_s,event,target,detail\n"
                    + "".join(f"{t:.6f},{k},{r},{d}\n" for t, k, r, d in rows))  # fmt: skip
    return sum(k == "fault" for _, k, _, _ in rows)

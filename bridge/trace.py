"""The raw trace of one real episode, kept next to its run directory.

What `kisim eval --real` keeps besides the Windows: every request the load generator
sent (``requests.csv``: start, latency, ok, pool, endpoint), the replicas' lifecycle
(``events.csv``, when the actuator records it, with the injected faults of
`bridge.faults`: ``fault``/``restored`` rows naming their target) and Prometheus' raw
``query_range`` of Triton's series over the episode (``prometheus/<metric>.json`` with
``index.json``), in the trace-bundle formats of docs/bundle-format.md, so a disputed number can be
recomputed from what was measured.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bridge.actuator import EventSource
from bridge.backend import ClusterBackend
from bridge.record.prometheus_export import EXTRA_TRITON_SERIES, index_entry, query_range
from kisim.core.errors import BackendError
from kisim.core.trace_bundle import TRITON_SERIES


def write_events(b: ClusterBackend, d: Path) -> None:
    """``events.csv``: the replicas' lifecycle and the injected faults; call after `close()`
    to include the stops. A detail with a comma is quoted (CSV)."""
    events = list(b.actuator.events()) if isinstance(b.actuator, EventSource) else []
    if b.faults is not None:
        events += b.faults.events
    if isinstance(b.actuator, EventSource) or events:
        d.mkdir(parents=True, exist_ok=True)
        with (d / "events.csv").open("w") as f:
            f.write("t_unix_s,pool,replica,event,detail\n")
            for e in sorted(events, key=lambda e: e.t_unix):
                detail = f'"{e.detail.replace(chr(34), chr(39))}"' if "," in e.detail else e.detail
                f.write(f"{e.t_unix:.6f},{e.pool},{e.replica},{e.kind},{detail}\n")


def write_trace(b: ClusterBackend, d: Path) -> dict[str, Any]:
    """Requests and Prometheus series of the episode `b` just ran (before `close()`)."""
    d.mkdir(parents=True, exist_ok=True)
    t0, t1 = b.t0_unix, b.t0_unix + b.now
    log = b.load.log
    n = log.write_requests_csv(d / "requests.csv") if log is not None else 0
    series = 0
    url = b.prometheus.url if b.prometheus is not None else b.prometheus_url
    if url and b.scenario is not None and b.now > 0:
        scrape = b.scenario.metrics.scrape_interval_s
        q0 = math.floor((t0 - 2 * scrape) / scrape) * scrape
        q1 = math.ceil(t1 / scrape) * scrape
        pd = d / "prometheus"
        pd.mkdir(exist_ok=True)
        index: dict[str, Any] = {}
        for metric in (*TRITON_SERIES, *EXTRA_TRITON_SERIES):
            query = f"{metric}{{{b.selectors.triton}}}"
            try:
                data = query_range(url, query, q0, q1, scrape)
            except BackendError:
                continue  # a trace is evidence, not a precondition: keep what could be read
            if data["data"]["result"]:
                (pd / f"{metric}.json").write_text(json.dumps(data, separators=(",", ":")))
                index[f"{metric}.json"] = index_entry(metric, query, scrape, q0, q1)
                series += 1
        (pd / "index.json").write_text(json.dumps(index, indent=1))
    return {"trace_requests": n, "trace_series": series, "t0_unix_s": t0, "t_end_unix_s": t1}

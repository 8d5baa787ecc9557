"""The bundle's ``prometheus/`` folder: raw ``query_range`` answers of each series over the
recording, and ``index.json`` naming each file's query and step (docs/bundle-format.md)."""

from __future__ import annotations

import json
import math
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.promql import Selectors
from kisim.core.errors import BackendError
from kisim.core.trace_bundle import TRITON_SERIES

# Triton series exported when present, besides the required TRITON_SERIES
EXTRA_TRITON_SERIES: tuple[str, ...] = (
    "nv_inference_request_failure",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_output_duration_us",
)
GAUGES = ("nv_inference_pending_request_count", "container_memory_working_set_bytes",
          "DCGM_FI_DEV_GPU_UTIL")  # fmt: skip


def get_json(url: str, timeout_s: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 - loopback/cluster
        return json.load(r)


def index_entry(metric: str, query: str, step_s: float, start: float, end: float) -> dict[str, Any]:
    """One entry of prometheus/index.json (keyed by the file name)."""
    return {"metric": metric, "query": query, "step": f"{step_s:g}s", "step_s": step_s,
            "start": start, "end": end,
            "type": "gauge" if metric in GAUGES else "counter"}  # fmt: skip


def query_range(url: str, query: str, start: float, end: float, step: float) -> dict[str, Any]:
    """Prometheus' ``/api/v1/query_range`` answer, retried with back-off (5 tries)."""
    params = urllib.parse.urlencode({"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                     "step": f"{step:g}"})  # fmt: skip
    full = f"{url}/api/v1/query_range?{params}"
    delay = 0.5
    for attempt in range(5):
        try:
            with urllib.request.urlopen(full, timeout=30) as r:  # noqa: S310
                data: dict[str, Any] = json.load(r)
            if data.get("status") == "success":
                return data
            err = data.get("error")
        except (OSError, ValueError) as e:
            err = str(e)
        if attempt < 4:
            time.sleep(delay)
            delay *= 2
    raise BackendError(f"{url}: Prometheus query_range failed for {query!r} ({err})")


def wait_scraped(url: str, selectors: Selectors, n: int, since: float,
                 timeout_s: float = 60.0) -> float:  # fmt: skip
    """Until Prometheus holds a sample taken after `since` from each of the `n` replicas;
    returns the newest sample's time."""
    q = urllib.parse.urlencode(
        {"query": f"timestamp(nv_inference_request_success{{{selectors.triton}}})"}
    )
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            res = get_json(f"{url}/api/v1/query?{q}")["data"]["result"]
            ts = [float(r["value"][1]) for r in res]
        except (OSError, ValueError, KeyError):
            ts = []
        if len(ts) >= n and min(ts) > since:
            return max(ts)
        if time.monotonic() > deadline:
            raise BackendError(f"{url}: Prometheus has not scraped the {n} replicas "
                               f"in {timeout_s:.0f} s")  # fmt: skip
        time.sleep(0.25)


def export_series(url: str, selectors: Selectors, scrape: float, d: Path, t0: float,
                  t_end: float, warn: Callable[[str], None]) -> float:  # fmt: skip
    """Raw query_range of each series into `d`; returns Triton's successes over [t0, t_end].

    The range runs from three scrapes before the start to two after the end, on the scrape
    grid; it first waits until Prometheus has scraped past the end."""
    q0 = math.floor((t0 - 3 * scrape) / scrape) * scrape
    q1 = math.ceil((t_end + 2 * scrape) / scrape) * scrape
    # let Prometheus scrape past the end (plus its evaluation delay)
    time.sleep(max(0.0, q1 + scrape + 0.5 - time.time()))
    sel = selectors
    want = [(m, sel.triton, True) for m in TRITON_SERIES]
    want += [(m, sel.triton, False) for m in EXTRA_TRITON_SERIES]
    want += [("container_cpu_usage_seconds_total", sel.pods, False),
             ("container_memory_working_set_bytes", sel.pods, False),
             ("DCGM_FI_DEV_GPU_UTIL", sel.gpu, False)]  # fmt: skip
    d.mkdir()
    index: dict[str, Any] = {}  # file name -> how it was queried
    success = math.nan
    for metric, s, required in want:
        query = f"{metric}{{{s}}}"
        data = query_range(url, query, q0, q1, scrape)
        result = data["data"]["result"]
        if not result:
            if required:
                raise BackendError(f"{url}: no samples of {query} during the recording")
            continue
        (d / f"{metric}.json").write_text(json.dumps(data, separators=(",", ":")))
        index[f"{metric}.json"] = index_entry(metric, query, scrape, q0, q1)
        if metric == "nv_inference_request_success":
            success = 0.0
            for r in result:
                vals = [(float(t), float(v)) for t, v in r["values"]]
                before = [v for t, v in vals if t <= t0]
                if not before:
                    warn(f"warning: {r['metric'].get('pod', '?')}: first sample of "
                         f"{metric} is after the start")  # fmt: skip
                success += vals[-1][1] - (before[-1] if before else vals[0][1])
    (d / "index.json").write_text(json.dumps(index, indent=1))
    return success

"""Names the trace-bundle format (docs/bundle-format.md) fixes for writer and readers alike.

`bridge.record` writes bundles and `calibration` reads them (and synthesises them from the
twin); neither may import the other, so the names they must agree on live here.
"""

from __future__ import annotations

# The Triton series every bundle's ``prometheus/`` holds (one ``<metric>.json`` each),
# in the order docs/bundle-format.md lists them.
TRITON_SERIES: tuple[str, ...] = (
    "nv_inference_request_success",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_pending_request_count",
)

# Triton perf_analyzer's CSV (`-f FILE --verbose-csv`): written by `kisim record`'s sweep mode
# (bridge/record/perf_csv.py), read as a calibration source (calibration/perf_analyzer.py).
PERF_LEVEL_COLUMNS = {"Concurrency": "concurrency", "Request Rate": "request_rate"}
# the columns after the level, in µs except the throughput (inferences/s)
PERF_COLUMNS: tuple[str, ...] = (
    "Inferences/Second",
    "Client Send",
    "Network+Server Send/Recv",
    "Server Queue",
    "Server Compute Input",
    "Server Compute Infer",
    "Server Compute Output",
    "Client Recv",
    "p50 latency",
    "p90 latency",
    "p95 latency",
    "p99 latency",
)
PERF_VERBOSE_COLUMNS: tuple[str, ...] = ("Avg latency", "request/response", "response wait")

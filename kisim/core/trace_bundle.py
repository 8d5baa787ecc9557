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

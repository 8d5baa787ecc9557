"""Read a Triton replica's own /metrics directly: the ground truth the Window is checked against.

Used for a replica's final counters before it stops (its series vanish from Prometheus
with it) and by the integration tests. Parses the Prometheus text format's simple
subset that Triton emits (no timestamps, no escaped quotes in label values).
"""

from __future__ import annotations

import math
import urllib.request

from kisim.core.errors import BackendError

COUNTERS: tuple[str, ...] = (
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
)


def parse(text: str) -> dict[str, float]:
    """Sum of each metric family's samples over all label sets: {name: value}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        try:
            v = float(value)
        except ValueError:
            continue
        if math.isfinite(v):
            out[name] = out.get(name, 0.0) + v
    return out


def scrape(address: str, timeout_s: float = 2.0) -> dict[str, float]:
    """GET http://<address>/metrics and parse it; BackendError names the address."""
    url = f"http://{address}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 - loopback
            return parse(r.read().decode())
    except OSError as e:
        raise BackendError(f"{url}: cannot read Triton metrics ({e})") from None


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in COUNTERS}

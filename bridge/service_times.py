"""Isolated per-batch-size service times: what one batch costs on a replica with nothing else
in flight, measured before a recording (a trace bundle's ``service_times.csv``).

Method (local backend): requests of batch size b (one ``b x 3 x 224 x 224`` FP32 tensor, sent
as Triton binary data) go one at a time to a single replica; around each one the replica's own
``/metrics`` are read, and the row's ``ms`` is **Triton's compute time as Triton reports it**:
``delta(nv_inference_compute_infer_duration_us) / delta(nv_inference_exec_count)`` — the same
counter the calibration reconciles against Prometheus during the run (for this Python
backend it includes pytriton's hand-over to the ONNX Runtime session, not only the kernel
time). A repeat whose deltas show anything other than exactly one execution of b items is an
error (something else reached the replica). Queue, compute-input/-output and whole-request
durations, and the client's round trip, are kept in the extra columns.

Method (kubernetes backend, where a pod's ``/metrics`` are not reachable from the client):
the same requests through the pool's Service with the pool scaled to one replica, and the
compute time read from Prometheus as the ratio of the counters' growth over each batch
size's block of repeats: one row per batch size (``repeat`` 0), the block mean.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bridge.triton_metrics import scrape
from kisim.core.errors import BackendError

BATCH_SIZES: tuple[int, ...] = (1, 2, 4, 8, 16)
COLUMNS = (
    "device,batch_size,repeat,ms,queue_ms,compute_input_ms,compute_output_ms,request_ms,"
    "client_ms,pool"
)
METHOD_LOCAL = (
    "triton-counters-per-request: ms = delta nv_inference_compute_infer_duration_us / "
    "delta nv_inference_exec_count around each request, read from the replica's /metrics; "
    "one replica, one request in flight"
)
METHOD_PROMETHEUS = (
    "triton-counters-per-block: ms = increase of nv_inference_compute_infer_duration_us / "
    "increase of nv_inference_exec_count over each batch size's block of sequential repeats, "
    "read through Prometheus; pool scaled to one replica"
)


@dataclass(frozen=True, slots=True)
class ServiceTime:
    device: str
    batch_size: int
    repeat: int
    ms: float  # compute_infer per execution, as Triton reports it
    queue_ms: float
    compute_input_ms: float
    compute_output_ms: float
    request_ms: float
    client_ms: float
    pool: str

    def csv(self) -> str:
        f = [self.ms, self.queue_ms, self.compute_input_ms, self.compute_output_ms,
             self.request_ms, self.client_ms]  # fmt: skip
        nums = ",".join("" if math.isnan(x) else f"{x:.3f}" for x in f)
        return f"{self.device},{self.batch_size},{self.repeat},{nums},{self.pool}"


def batch_sizes_for(max_batch_size: int, sizes: Sequence[int] = BATCH_SIZES) -> list[int]:
    """The sizes that fit the served model (batching off: Triton max_batch_size is 1)."""
    return [b for b in sizes if b <= max_batch_size]


class Infer:
    """One synchronous KServe-v2 binary-data inference request (stdlib only: no gevent here)."""

    def __init__(self, address: str, model: str, input_name: str, output_name: str,
                 timeout_s: float = 60.0, seed: int = 0) -> None:  # fmt: skip
        base = address if address.startswith(("http://", "https://")) else f"http://{address}"
        self.url = f"{base.rstrip('/')}/v2/models/{model}/infer"
        self.input_name, self.output_name = input_name, output_name
        self.timeout_s = timeout_s
        self._rng = np.random.default_rng(seed)
        self._bodies: dict[int, tuple[bytes, int]] = {}

    def _body(self, b: int) -> tuple[bytes, int]:
        if b not in self._bodies:
            x = self._rng.random((b, 3, 224, 224), dtype=np.float32).tobytes()
            hdr = json.dumps({
                "inputs": [{"name": self.input_name, "shape": [b, 3, 224, 224], "datatype": "FP32",
                            "parameters": {"binary_data_size": len(x)}}],
                "outputs": [{"name": self.output_name, "parameters": {"binary_data": True}}],
            }).encode()  # fmt: skip
            self._bodies[b] = (hdr + x, len(hdr))
        return self._bodies[b]

    def __call__(self, b: int) -> float:
        """Send a batch of `b`; the client's round trip, ms."""
        body, hlen = self._body(b)
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Inference-Header-Content-Length": str(hlen),
            "Content-Type": "application/octet-stream",
        })  # fmt: skip
        t = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:  # noqa: S310
                r.read()
        except OSError as e:
            raise BackendError(f"{self.url}: inference request (batch {b}) failed ({e})") from None
        return (time.perf_counter() - t) * 1000.0


def _stable(metrics_address: str, quiet_s: float = 0.3, timeout_s: float = 5.0
            ) -> dict[str, float]:  # fmt: skip
    """Counters once they have not moved for `quiet_s` (earlier requests fully accounted)."""
    last = scrape(metrics_address)
    since = time.monotonic()
    deadline = since + timeout_s
    while time.monotonic() - since < quiet_s:
        time.sleep(0.05)
        now = scrape(metrics_address)
        if now != last:
            last, since = now, time.monotonic()
        if time.monotonic() > deadline:
            raise BackendError(f"{metrics_address}: service times: Triton's counters keep "
                               "moving (other traffic?)")  # fmt: skip
    return last


def measure_local(
    infer: Infer,
    metrics_address: str,
    *,
    pool: str,
    device: str,
    sizes: Sequence[int],
    repeats: int = 20,
    warmup: int = 3,
    settle_s: float = 2.0,
) -> list[ServiceTime]:
    """Per-request Triton counters around each of `repeats` requests per batch size.

    Triton updates its counters just after the response leaves (success and durations in
    one step, the execution count in another), so each repeat waits until the counters show
    exactly this request — one more success and execution, b more items — before the next."""
    rows: list[ServiceTime] = []
    for b in sizes:
        for _ in range(warmup):
            infer(b)
        prev = _stable(metrics_address)
        for r in range(repeats):
            client = infer(b)
            deadline = time.monotonic() + settle_s
            while True:
                after = scrape(metrics_address)
                d = {k: after.get(k, 0.0) - prev.get(k, 0.0) for k in after}
                got = tuple(
                    d.get(f"nv_inference_{k}", 0)
                    for k in ("request_success", "exec_count", "count")
                )
                if got == (1, 1, b):
                    time.sleep(0.005)  # the durations move in steps of their own: settle
                    again = scrape(metrics_address)
                    if again == after:
                        break
                    continue
                if got[0] > 1 or got[1] > 1 or got[2] > b or time.monotonic() > deadline:
                    raise BackendError(
                        f"{metrics_address}: service times: expected one execution of {b} "
                        f"items, Triton counted {got[1]:g} executions of {got[2]:g} items and "
                        f"{got[0]:g} successes (other traffic?)"
                    )
                time.sleep(0.005)
            prev = after

            def ms(key: str, d: dict[str, float] = d) -> float:
                return d.get(f"nv_inference_{key}_duration_us", math.nan) / 1000.0

            rows.append(ServiceTime(device, b, r, ms("compute_infer"), ms("queue"),
                                    ms("compute_input"), ms("compute_output"), ms("request"),
                                    client, pool))  # fmt: skip
    return rows


def measure_prometheus(
    infer: Infer,
    scalar: Callable[[str, float], float],
    triton_selector: str,
    scrape_interval_s: float,
    *,
    pool: str,
    device: str,
    sizes: Sequence[int],
    repeats: int = 20,
    warmup: int = 3,
) -> list[ServiceTime]:
    """Block means through Prometheus (`scalar(query, at_unix)` is an instant query)."""

    def total(metric: str, at: float) -> float:
        return scalar(f"sum({metric}{{{triton_selector}}})", at)

    names = {"ms": "compute_infer", "queue_ms": "queue", "compute_input_ms": "compute_input",
             "compute_output_ms": "compute_output", "request_ms": "request"}  # fmt: skip
    wait = 1.5 * scrape_interval_s + 0.5
    rows: list[ServiceTime] = []
    for b in sizes:
        for _ in range(warmup):
            infer(b)
        time.sleep(wait)  # the next samples hold the warm-up, not the block
        t_a = time.time()
        client = [infer(b) for _ in range(repeats)]
        time.sleep(wait)
        t_b = time.time()
        ex = total("nv_inference_exec_count", t_b) - total("nv_inference_exec_count", t_a)
        if not ex >= 1:
            raise BackendError(f"service times: Prometheus shows no executions for batch {b}")
        vals = {
            k: (total(f"nv_inference_{m}_duration_us", t_b)
                - total(f"nv_inference_{m}_duration_us", t_a)) / ex / 1000.0
            for k, m in names.items()
        }  # fmt: skip
        rows.append(ServiceTime(device=device, batch_size=b, repeat=0,
                                client_ms=float(np.mean(client)), pool=pool, **vals))  # fmt: skip
    return rows

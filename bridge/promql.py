"""Every PromQL query the bridge runs, in one place, each with what it measures.

Queries are instant queries evaluated at a window's end. Series names are those of a
cluster (Triton's ``nv_inference_*`` on port 8002, cAdvisor, kube-state-metrics, DCGM);
the local stack exports the same names (`bridge.proc_exporter`), so only the label
matchers differ between backends: `Selectors` holds them.

Ranges: utilisations use the scenario's ``rate_window_s`` (what a dashboard or HPA-style
rule would read). Triton's counters (requests, items, batches, queue time) are read as
each series' growth between two scrapes (`growth`): the last sample at or before the
range's start and the last sample in the range, with no extrapolation. Every counter of a
replica comes from the same scrape, so a ratio of two growths (mean batch size, mean queue
wait) is the ratio over exactly the same requests. `increase()` is not used for them: it
extrapolates each series to the range's edges with that series' own slope and clamps the
extrapolation at the series' own zero point (Prometheus 2.42 `extrapolatedRate`,
promql/functions.go), so numerator and denominator are stretched differently whenever the
requests in the first scrape interval waited longer than the rest (the burst at t0, a
fresh replica's first inferences): the episode's mean queue wait read 16-25 % low.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Selectors:
    """Label matchers (PromQL, without braces) for each family of series."""

    triton: str = 'job="triton"'  # Triton replicas' metrics endpoints
    pods: str = 'container="triton"'  # cAdvisor / kube-state-metrics series of the replicas
    gpu: str = 'job="dcgm"'  # DCGM exporter of the GPUs serving the gpu pool

    def pool(self, pool: str) -> Selectors:
        """The same matchers narrowed to one pool (local: the `pool` target label)."""
        extra = f',pool="{pool}"'
        return Selectors(self.triton + extra, self.pods + extra, self.gpu)


def dur(seconds: float) -> str:
    """A PromQL duration in whole milliseconds (Prometheus 2.x accepts `ms`)."""
    return f"{max(1, int(round(seconds * 1000)))}ms"


LOOKBACK = "5m"  # Prometheus' default --query.lookback-delta: a series silent this long is gone


def growth(metric: str, sel: str, r: str) -> str:
    """How much a counter's series grew over the range, summed: per series, its last sample
    in the range minus its last sample at or before the range's start (ranges include both
    ends in Prometheus 2.x), with no extrapolation. What Prometheus 3.x calls
    `increase(x[r] anchored)`, built from 2.x functions:
    * a series with no sample before the range (a replica that appeared in it) grew from 0,
      where Triton starts its counters;
    * a series that restarted under the same labels (a container restarted in its pod) is
      read by `increase()` for that range: reset-aware, extrapolated, the best 2.x offers;
      a restart before the range's first sample shows as a drop below the baseline and
      counts from 0.
    Consecutive ranges tile: each request is counted once, in the range whose scrape first
    saw it."""
    m = f"{metric}{{{sel}}}"
    last = f"last_over_time({m}[{r}])"
    base = f"last_over_time({m}[{LOOKBACK}] offset {r})"
    restarted = f"resets({m}[{r}]) > 0"
    plain = f"(({last} - {base}) >= 0) unless {restarted}"
    return f"sum({plain} or (increase({m}[{r}]) and {restarted}) or {last})"


def triton_success(s: Selectors, range_s: float) -> str:
    """Requests Triton answered successfully over the range, all replicas (cross-check)."""
    return growth("nv_inference_request_success", s.triton, dur(range_s))


def triton_failures(s: Selectors, range_s: float) -> str:
    """Requests Triton failed (rejected by a full queue, backend errors) over the range."""
    return growth("nv_inference_request_failure", s.triton, dur(range_s))


def batch_items(s: Selectors, range_s: float) -> str:
    """Inferences executed (items, summed over batches) over the range."""
    return growth("nv_inference_count", s.triton, dur(range_s))


def batches(s: Selectors, range_s: float) -> str:
    """Model executions (batches) over the range."""
    return growth("nv_inference_exec_count", s.triton, dur(range_s))


def mean_batch_size(s: Selectors, range_s: float) -> str:
    """Items per executed batch: what the dynamic batcher achieved. At least 1: a scrape can
    read the execution counter after a batch and the item counter before it (seen as 0.996
    over an 8-s window), and no batch holds less than one item."""
    return f"clamp_min({batch_items(s, range_s)} / {batches(s, range_s)}, 1)"


def queue_wait_ms(s: Selectors, range_s: float) -> str:
    """Mean time a successful request spent in Triton's scheduler queue, ms."""
    r = dur(range_s)
    us = growth("nv_inference_queue_duration_us", s.triton, r)
    return f"{us} / {growth('nv_inference_request_success', s.triton, r)} / 1000"


def queue_length(s: Selectors) -> str:
    """Requests waiting in Triton's queues now (last scrape), all replicas."""
    return f"sum(nv_inference_pending_request_count{{{s.triton}}})"


def _ready(s: Selectors) -> str:
    return f'(sum by (pod) (kube_pod_status_ready{{{s.pods},condition="true"}}) == 1)'


def cpu_util(s: Selectors, range_s: float) -> str:
    """Mean over ready pods of CPU used / CPU requested (cAdvisor rate over the range)."""
    used = pod_cpu_cores(s, range_s)
    req = f'sum by (pod) (kube_pod_container_resource_requests{{{s.pods},resource="cpu"}})'
    return f"avg(({used} / on(pod) {req}) and on(pod) {_ready(s)})"


def pod_cpu_cores(s: Selectors, range_s: float) -> str:
    """CPU cores each pod used over the range (metrics-server's view, for an HPA): by pod."""
    return f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{s.pods}}}[{dur(range_s)}]))"


def mem_util(s: Selectors) -> str:
    """Mean over ready pods of working-set memory / memory limit (last scrape)."""
    ws = f"sum by (pod) (container_memory_working_set_bytes{{{s.pods}}})"
    lim = f'sum by (pod) (kube_pod_container_resource_limits{{{s.pods},resource="memory"}})'
    return f"avg(({ws} / on(pod) {lim}) and on(pod) {_ready(s)})"


def gpu_util(s: Selectors, range_s: float) -> str:
    """Mean over GPUs of DCGM's busy percentage over the range, as a fraction."""
    return f"avg(avg_over_time(DCGM_FI_DEV_GPU_UTIL{{{s.gpu}}}[{dur(range_s)}])) / 100"

"""Every PromQL query the bridge runs, in one place, each with what it measures.

Queries are instant queries evaluated at a window's end. Series names are those of a
cluster (Triton's ``nv_inference_*`` on port 8002, cAdvisor, kube-state-metrics, DCGM);
the local stack exports the same names (`bridge.proc_exporter`), so only the label
matchers differ between backends: `Selectors` holds them.

Ranges: utilisations use the scenario's ``rate_window_s`` (what a dashboard or HPA-style
rule would read); ratios of Triton counters (mean batch size, mean queue wait) use
``max(window, rate_window_s)`` so they have at least two samples even when the window is
as short as the scrape interval. Ratios of two `increase()`s of the same replica share the
same extrapolation factor, which cancels.
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


def _inc(metric: str, sel: str, r: str) -> str:
    return f"sum(increase({metric}{{{sel}}}[{r}]))"


def triton_success(s: Selectors, range_s: float) -> str:
    """Requests Triton answered successfully over the range, all replicas (cross-check)."""
    return _inc("nv_inference_request_success", s.triton, dur(range_s))


def triton_failures(s: Selectors, range_s: float) -> str:
    """Requests Triton failed (rejected by a full queue, backend errors) over the range."""
    return _inc("nv_inference_request_failure", s.triton, dur(range_s))


def batch_items(s: Selectors, range_s: float) -> str:
    """Inferences executed (items, summed over batches) over the range."""
    return _inc("nv_inference_count", s.triton, dur(range_s))


def batches(s: Selectors, range_s: float) -> str:
    """Model executions (batches) over the range."""
    return _inc("nv_inference_exec_count", s.triton, dur(range_s))


def mean_batch_size(s: Selectors, range_s: float) -> str:
    """Items per executed batch: what the dynamic batcher achieved. At least 1: a scrape can
    read the execution counter after a batch and the item counter before it (seen as 0.996
    over an 8-s window), and no batch holds less than one item."""
    return f"clamp_min({batch_items(s, range_s)} / {batches(s, range_s)}, 1)"


def queue_wait_ms(s: Selectors, range_s: float) -> str:
    """Mean time a successful request spent in Triton's scheduler queue, ms."""
    r = dur(range_s)
    return f"{_inc('nv_inference_queue_duration_us', s.triton, r)} / {_inc('nv_inference_request_success', s.triton, r)} / 1000"  # noqa: E501


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

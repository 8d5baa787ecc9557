"""What Prometheus and metrics-server see of the twin.

A scrape process samples every ready or terminating pod's counters into a
`SeriesStore` every `scrape_interval_s` (cAdvisor CPU seconds, working set, Triton's
`nv_inference_*`, DCGM busy time per GPU); Window utilisations are PromQL-style
`rate()` reads over `rate_window_s`. metrics-server (what the HPA reads) keeps the
last two CPU samples per pod at its own resolution, like the kubelet summary API.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import simpy

from kisim.core.config import MetricsConfig
from kisim.core.hpa import PodSample
from twin.pods import Phase, Pod, PodManager
from twin.scrape import SeriesStore

if TYPE_CHECKING:
    from twin.faults import FaultInjector

COUNTERS = ("success", "exec", "items")
SERIES = ("cpu", "mem", "success", "exec", "items", "queue_s", "compute_s")


class Observer:
    def __init__(self, env: simpy.Environment, pods: PodManager, cfg: MetricsConfig) -> None:
        self.env, self.pods, self.cfg = env, pods, cfg
        self.store = SeriesStore(retention_s=max(4 * cfg.rate_window_s, 600.0))
        self.ms: dict[str, tuple[float, float, float, float]] = {}  # pod -> t0, v0, t1, v1
        self._keys: dict[str, tuple[str, ...]] = {}  # pod -> its series' names (built once)
        self.faults: FaultInjector | None = None  # scrape failures, outages (twin.faults)
        env.process(self._scrape())
        env.process(self._metrics_server())

    def _all_pods(self) -> list[Pod]:
        return [p for pods in self.pods.pods.values() for p in pods]

    def _series(self, pod: str) -> tuple[str, ...]:
        """cpu, mem, success, exec, items, queue_s, compute_s series of `pod` (formatting
        seven names per pod per scrape cost more than the scrape of 1,000 pods' counters)."""
        keys = self._keys.get(pod)
        if keys is None:
            keys = self._keys[pod] = tuple(f"{m}:{pod}" for m in SERIES)
        return keys

    def _scrape(self):  # type: ignore[no-untyped-def]
        env, store = self.env, self.store
        while True:
            t = env.now
            gpus = {}
            fx = self.faults
            samples: list[tuple[str, float]] = []
            for p in self._all_pods() if fx is None or fx.prometheus_up() else ():
                r = p.replica
                if r is None or (fx is not None and not fx.scraped(p, t)):
                    continue
                k_cpu, k_mem, k_succ, k_exec, k_items, k_queue, k_compute = self._series(p.name)
                samples += ((k_cpu, r.cpu_s), (k_mem, r.memory_gib()), (k_succ, r.n_success),
                            (k_exec, r.n_exec), (k_items, r.n_items), (k_queue, r.queue_s_sum),
                            (k_compute, r.compute_s_sum))  # fmt: skip
                if r.gpu is not None:
                    gpus[r.gpu.name] = r.gpu
            store.add_all(t, samples)  # one scrape, one timestamp
            for name, g in gpus.items():
                store.add(t, f"gpu_busy:{name}", self.pods.dp.gpu_busy_seconds(g, t))
            yield env.timeout(self.cfg.scrape_interval_s)

    def _metrics_server(self):  # type: ignore[no-untyped-def]
        env = self.env
        while True:
            t = env.now
            for p in self._all_pods():
                if p.running_at is None or p.phase is Phase.GONE:
                    continue
                if self.faults is not None and not self.faults.metrics_served(p):
                    self.ms.pop(p.name, None)  # absent from the metrics API
                    continue
                v = p.replica.cpu_s if p.replica is not None else 0.0
                prev = self.ms.get(p.name)
                self.ms[p.name] = (prev[2], prev[3], t, v) if prev else (math.nan, math.nan, t, v)
            yield env.timeout(self.cfg.metrics_server_resolution_s)

    # ------------------------------------------------------------------ views

    def pod_samples(self, pool: str) -> list[PodSample]:
        """The pods of a pool as the HPA controller sees them (metrics from metrics-server)."""
        out = []
        for p in self.pods.pods.get(pool, []):
            m = self.ms.get(p.name)
            usage = None
            ts = window = 0.0
            if m is not None and not math.isnan(m[0]) and m[2] > m[0]:
                usage, ts, window = (m[3] - m[1]) / (m[2] - m[0]), m[2], m[2] - m[0]
            running = p.running_at is not None
            out.append(PodSample(
                name=p.name,
                phase="Running" if running else "Pending",
                deleting=p.deleting,
                ready=p.phase is Phase.READY,
                start_time=p.started_at,
                ready_transition_time=(p.ready_at if p.ready_at is not None else p.running_at),
                cpu_request=p.cfg.resources.cpu,
                cpu_usage=usage,
                metric_timestamp=ts,
                metric_window=window,
            ))  # fmt: skip
        return out

    def queue_us_per_request(self, pool: str, range_s: float) -> dict[str, float]:
        """Triton's autoscaling metric per pod of `pool` (NVIDIA's k8s-onprem chart, the
        prometheus-adapter rule): ``delta(nv_inference_queue_duration_us[r]) /
        (1 + delta(nv_inference_request_success[r]))``, µs; pods with fewer than two
        samples in the range have no value (absent from the custom metrics API)."""
        now, out = self.env.now, {}
        for p in self.pods.pods.get(pool, []):
            q = self.store.delta(f"queue_s:{p.name}", now, range_s)
            n = self.store.delta(f"success:{p.name}", now, range_s)
            if q is not None and n is not None:
                out[p.name] = q * 1e6 / (1.0 + n)
        return out

    def utilisation(self) -> tuple[float, float, float]:
        """(cpu_util, mem_util, gpu_util) at now, averaged over ready pods / their GPUs."""
        now, rng, store = self.env.now, self.cfg.rate_window_s, self.store
        cpu: list[float] = []
        mem: list[float] = []
        gpus = {}
        for p in self._all_pods():
            if p.phase is not Phase.READY or p.replica is None:
                continue
            keys = self._series(p.name)
            c = store.rate(keys[0], now, rng)
            if c is not None:
                cpu.append(c / p.cfg.resources.cpu)
            m = store.last(keys[1], now)
            if m is not None:
                mem.append(m / p.cfg.resources.memory_gib)
            if p.replica.gpu is not None:
                gpus[p.replica.gpu.name] = True
        gpu = [g for g in (store.rate(f"gpu_busy:{n}", now, rng) for n in gpus) if g is not None]
        mean = lambda xs: sum(xs) / len(xs) if xs else math.nan  # noqa: E731
        return mean(cpu), mean(mem), min(mean(gpu), 1.0) if gpu else math.nan

"""`ClusterBackend`: real serving behind the `kisim.core.backend.Backend` protocol, in wall time.

Composed of three replaceable parts: an `Actuator` (local processes or Kubernetes), an
`Observer` (PromQL against Prometheus) and a `LoadGenerator` (Locust in its own process).
`advance(dt)` really waits `dt` seconds, keeping the load generator's endpoint lists in
step with the actuator's readiness, then builds the same `Window` the twin reports:
request counts and latency percentiles from the per-request records, utilisation and
Triton's batch/queue figures from Prometheus, replica counts from the actuator.

Safety: replica targets are clamped to the pool's bounds (and the actuator clamps again);
`close()` — also run at interpreter exit, and expected in the caller's ``finally`` — stops
the load, then restores/removes what the actuator created, then stops a Prometheus it
started. Use it as a context manager.
"""

from __future__ import annotations

import atexit
import logging
import math
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bridge import promql
from bridge.actuator import (
    Actuator,
    EndpointLister,
    EventSource,
    PodLister,
    check_seed_layout,
    set_controller,
)
from bridge.lifecycle import replica_seconds
from bridge.load import LoadGenerator
from bridge.model_export import INPUT_NAME, OUTPUT_NAME
from bridge.observer import Observer
from bridge.prometheus_server import PrometheusServer, local_prometheus
from bridge.promql import Selectors
from kisim.core.backend import Action, Applied, PodView
from kisim.core.config import SEED_POOLS, Scenario
from kisim.core.errors import BackendError
from kisim.core.hpa import PodSample
from kisim.core.outputs import tmp_dir
from kisim.core.patterns import Pattern, make_pattern
from kisim.core.prices import pool_rates
from kisim.core.window import PoolReplicas, Utilisation, Window, percentiles_ms

if TYPE_CHECKING:
    from bridge.faults import FaultInjector

log = logging.getLogger(__name__)


class ClusterBackend:
    """The real backend. ``prometheus_url=None`` starts a local Prometheus that scrapes
    the actuator's ``targets_file`` (and ``exporter``), as the local actuator provides."""

    def __init__(
        self,
        actuator: Actuator,
        *,
        prometheus_url: str | None = None,
        selectors: Selectors | None = None,
        workdir: Path | None = None,
        model_name: str = "mobilenetv4_conv_small",
        ready_timeout_s: float = 300.0,
        load_lead_s: float = 0.3,
        tick_s: float = 0.1,
    ) -> None:
        self.actuator = actuator
        self.prometheus_url = prometheus_url
        self.selectors = selectors or Selectors()
        self._own_workdir = workdir is None
        self.workdir = workdir or tmp_dir("bridge")  # /tmp/kisim-<pid>-*: swept once pid is gone
        self.ready_timeout_s = ready_timeout_s
        self.load_lead_s = load_lead_s
        self.tick_s = tick_s
        self.load = LoadGenerator(
            self.workdir, model_name=model_name, input_name=INPUT_NAME, output_name=OUTPUT_NAME
        )
        self.prometheus: PrometheusServer | None = None
        self.observer: Observer | None = None
        self.scenario: Scenario | None = None
        self.pattern: Pattern | None = None
        self.placement = "balanced"
        self.windows: list[Window] = []
        self.t0_unix = math.nan
        self._now = 0.0
        self._sampled: dict[str, float] = {}
        self.faults: FaultInjector | None = None  # real faults injected in episode time
        self.metrics_missing: list[bool] = []  # per Window: Prometheus could not be read
        self._metrics_at = 0.0  # episode time of the last Window Prometheus could be read for
        self._closed = False
        atexit.register(self.close)

    # ------------------------------------------------------------------ Backend protocol

    @property
    def now(self) -> float:
        return self._now

    def reset(self, scenario: Scenario, seed: int) -> None:
        """Stop any running load, bring pools to the initial replicas, wait until they are
        ready, then start the load; the episode clock starts when the load does."""
        if self._closed:
            raise BackendError("cluster backend: already closed")
        self.load.stop()
        check_seed_layout(scenario)
        self.scenario = scenario
        self.pattern = make_pattern(
            scenario.traffic.pattern.name, scenario.traffic.pattern.params, seed
        )
        self.placement = scenario.routing.placement
        self.windows = []
        self._now = 0.0
        self._sampled = {}
        self.metrics_missing = []
        self._metrics_at = 0.0
        if self.faults is not None:
            self.faults.restore(self)
            self.faults.rearm()
        self._start_observer(scenario)
        set_controller(self.actuator, scenario)
        self.actuator.start(scenario)
        self._wait_ready(scenario)
        self.t0_unix = self.load.start(
            scenario, seed, self._endpoints(), self._share(), lead_s=self.load_lead_s
        )
        self._sleep_until(self.t0_unix)

    def apply(self, action: Action) -> Applied:
        sc = self._scenario()
        clamped: dict[str, str] = {}
        for pool, setting in action.pools.items():
            cfg = sc.pools.get(pool)  # type: ignore[call-overload]
            if setting.replicas is not None:
                if cfg is None:
                    clamped[f"{pool}.replicas"] = f"no pool '{pool}' in the scenario"
                else:
                    want = setting.replicas
                    n = max(cfg.min_replicas, min(cfg.max_replicas, want))
                    if n != want:
                        side = "max" if want > n else "min"
                        sign = ">" if want > n else "<"
                        clamped[f"{pool}.replicas"] = f"{want} {sign} {side}_replicas {n}"
                    got = self.actuator.set_replicas(pool, n)
                    if got != n:
                        clamped[f"{pool}.replicas"] = f"actuator set {got}, asked {n}"
            for knob in ("cpu", "memory_gib", "max_batch_size", "instances"):
                if getattr(setting, knob) is not None:
                    clamped[f"{pool}.{knob}"] = "not supported by the real backend yet"
        if action.placement is not None:
            if action.placement not in sc.routing.placements:
                raise BackendError(f"unknown placement '{action.placement}'")
            self.placement = action.placement
        if action.hpa_target is not None:
            for pool in sc.hpa_pools():
                self.actuator.set_hpa(pool, action.hpa_target)
        self._tick()
        replicas = {p: self.actuator.state(p).desired for p in sc.pools}
        return Applied(replicas=replicas, clamped=clamped)

    def advance(self, dt: float) -> Window:
        """Wait until the window's end in wall time, then report it."""
        sc = self._scenario()
        a = self.t0_unix + self._now
        b = a + dt
        self._sleep_until(b)
        log_ = self.load.collect(b, on_wait=self._poll_faults)
        rec = log_.window(a, b)
        assert self.observer is not None
        view = self.observer.view(b, dt, b - self.t0_unix)
        st = {p: self.actuator.state(p) for p in SEED_POOLS}
        cost = {p: self._replica_s(p, a, b) for p in SEED_POOLS}
        slow = int(np.count_nonzero(rec.latencies_s * 1000.0 > sc.slo_ms))
        t_end = self._now + dt
        assert self.pattern is not None
        w = Window.measured(
            t_start=self._now,
            t_end=t_end,
            load_level=self.pattern.level(t_end),
            offered=rec.offered,
            served=rec.served,
            errors=rec.errors,
            latency_ms=percentiles_ms(rec.latencies_s),
            slow=slow,
            queue_wait_ms=view.queue_wait_ms,
            util=Utilisation(view.cpu_util, view.mem_util, view.gpu_util),
            replicas={p: PoolReplicas(s.desired, s.ready, s.pending) for p, s in st.items()},
            replica_s=cost,
            pending_pod_s=self._sampled.pop("pending", 0.0),
            queue_length=0 if math.isnan(view.queue_length) else int(view.queue_length),
            mean_batch_size=view.mean_batch_size,
            placement=self.placement,
            price_per_hour=pool_rates(sc),
        )
        self._now = t_end
        self.windows.append(w)
        self.metrics_missing.append(view.missing)
        if not view.missing:
            self._metrics_at = t_end
        return w

    @property
    def metrics_age_s(self) -> float:
        """Seconds since the end of the last Window whose Prometheus figures could be read
        (0 while Prometheus answers): how stale what the policy sees of the metrics is."""
        return self._now - self._metrics_at

    def restore_faults(self) -> None:
        """Undo every injected fault still active (SIGCONT, Prometheus back, filler gone)."""
        if self.faults is not None:
            self.faults.restore(self)

    def close(self) -> None:
        """Stop the load, remove the replicas (restore originals), stop Prometheus."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        errors: list[str] = []
        for step in (self.restore_faults, self.load.stop, self.actuator.close,
                     self._stop_prometheus):  # fmt: skip
            try:
                step()
            except Exception as e:  # noqa: BLE001 - keep cleaning up, report at the end
                errors.append(f"{step.__qualname__}: {e}")
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise BackendError("cluster backend: clean-up incomplete: " + "; ".join(errors))

    def __enter__(self) -> ClusterBackend:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ for an outside HPA

    @property
    def in_cluster_hpa(self) -> bool:
        """Whether controller 'hpa' can be a real HPA object (Kubernetes, not local)."""
        return bool(getattr(self.actuator, "has_hpa", True))

    def pod_metric(self, pool: str, metric: str,
                   range_s: float) -> tuple[list[PodSample], dict[str, float]]:  # fmt: skip
        raise BackendError("cluster backend: no per-pod custom metrics (Triton's counters are "
                           "read per pool)")  # fmt: skip

    def pod_views(self, pool: str, window_s: float) -> list[PodView]:
        """Each live pod of `pool` now, as an HPA sees it: lifecycle in episode seconds,
        CPU request, and cores used over the last `window_s` from Prometheus (the
        metrics-server's resolution); None where Prometheus has no rate yet."""
        sc = self._scenario()
        if not isinstance(self.actuator, PodLister) or self.observer is None:
            raise BackendError("cluster backend: this actuator does not list its pods")
        at = self.t0_unix + self._now
        q = promql.pod_cpu_cores(self.selectors.pool(pool), window_s)
        try:  # Prometheus down: no figure for any pod, and the HPA holds (as on a cluster
            # whose metrics API fails); a fault must not stall the episode for retries
            used = self.observer.by_label(q, at, "pod", self.observer.view_retries)
        except BackendError:
            used = {}
        req = sc.pools[pool].resources.cpu  # type: ignore[index]
        t0 = self.t0_unix
        return [PodView(p.name, p.created - t0, None if p.ready_at is None else p.ready_at - t0,
                        p.deleting, req, used.get(p.name), self._now, window_s)
                for p in self.actuator.pods(pool)]  # fmt: skip

    # ------------------------------------------------------------------ run-summary extras

    def latencies(self) -> np.ndarray:
        """Successful request latencies (s) completed during the episode."""
        if self.load.log is None:
            return np.empty(0)
        return self.load.log.latencies_s(self.t0_unix, self.t0_unix + self._now)

    def waits(self) -> np.ndarray:
        """Triton reports queue time only in aggregate: one element, the episode's mean (s)."""
        v = self._episode_query("queue_wait_ms")
        return np.empty(0) if math.isnan(v) else np.array([v / 1000.0])

    @property
    def batches(self) -> int:
        v = self._episode_query("batches")
        return 0 if math.isnan(v) else int(round(v))

    @property
    def batch_items(self) -> int:
        v = self._episode_query("batch_items")
        return 0 if math.isnan(v) else int(round(v))

    # ------------------------------------------------------------------ internals

    def _scenario(self) -> Scenario:
        if self.scenario is None:
            raise BackendError("cluster backend: reset() first")
        return self.scenario

    def _episode_query(self, field: str) -> float:
        """A figure over the whole episode so far (one PromQL evaluation per episode end)."""
        if self.observer is None or self._now <= 0:
            return math.nan
        return float(getattr(self.observer.episode(self.t0_unix, self._now), field))

    def _start_observer(self, sc: Scenario) -> None:
        url = self.prometheus_url
        if url is None:
            self.prometheus = local_prometheus(self.prometheus, sc.metrics.scrape_interval_s,
                                               self.actuator)  # fmt: skip
            url = self.prometheus.url
        self.observer = Observer(url, sc.metrics, self.selectors)

    def _stop_prometheus(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus = None

    def _wait_ready(self, sc: Scenario) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            states = {p: self.actuator.state(p) for p in sc.pools}
            if all(s.ready >= cfg.replicas for p, cfg in sc.pools.items() for s in [states[p]]):
                return
            if time.monotonic() > deadline:
                brief = ", ".join(f"{p} {s.ready}/{s.desired}" for p, s in states.items())
                raise BackendError(
                    f"replicas not ready after {self.ready_timeout_s:.0f} s ({brief})"
                )
            time.sleep(0.2)

    def _share(self) -> float | None:
        return self._scenario().routing.gpu_share.get(self.placement)

    def _endpoints(self) -> dict[str, list[str]]:
        sc = self._scenario()
        out: dict[str, list[str]] = {}
        for pool in sc.pools:
            if isinstance(self.actuator, EndpointLister):
                out[pool] = self.actuator.endpoints(pool)
            else:  # a Service: one URL, usable while any endpoint is ready
                url = self.actuator.pool_url(pool)
                ready = self.actuator.state(pool).ready > 0
                out[pool] = [url.split("://", 1)[-1]] if url and ready else []
        return out

    def _tick(self) -> None:
        """Propagate readiness to routing; sample what events cannot tell (no EventSource)."""
        if self.load.proc is None:
            return
        self._poll_faults()
        self.load.route(self._endpoints(), self._share())
        if not isinstance(self.actuator, EventSource):
            for pool in self._scenario().pools:
                s = self.actuator.state(pool)
                self._sampled[pool] = (
                    self._sampled.get(pool, 0.0) + (s.desired - s.pending) * self.tick_s
                )
                self._sampled["pending"] = (
                    self._sampled.get("pending", 0.0) + s.pending * self.tick_s
                )

    def _poll_faults(self) -> None:
        if self.faults is not None and self.load.proc is not None:
            self.faults.poll(self, time.time() - self.t0_unix)

    def _replica_s(self, pool: str, a: float, b: float) -> float:
        if isinstance(self.actuator, EventSource):
            return replica_seconds(self.actuator.events(), pool, a, b)
        return self._sampled.pop(pool, 0.0)

    def _sleep_until(self, t_unix: float) -> None:
        while True:
            self._tick()
            left = t_unix - time.time()
            if left <= 0:
                return
            time.sleep(min(self.tick_s, left))


def make_local_backend(workdir: Path | None = None) -> ClusterBackend:
    """The local real stack: Triton processes, a local Prometheus, Locust; see docs/bridge.md.

    `workdir` keeps the replicas' and Locust's logs and the request records (a trace's
    raw material); by default everything lives in temporary directories removed by close().
    Raises BackendError naming the missing piece when scripts/setup-bridge.sh has not run.
    """
    from bridge.local import MODEL_NAME, LocalActuator

    actuator = LocalActuator(workdir / "replicas" if workdir else None)
    try:
        return ClusterBackend(
            actuator, workdir=workdir / "run" if workdir else None, model_name=MODEL_NAME
        )
    except BaseException:
        actuator.close()
        raise

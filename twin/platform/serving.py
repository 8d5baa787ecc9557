"""Inference models on the platform: one Deployment of Triton replicas per model.

Each model has its own calibration device (service curve, overhead, start-up), Poisson
arrivals at ``rate_rps`` times the scenario's load level, and replicas that take up to
``max_batch_size`` queued requests per execution (Triton's dynamic batcher with no queue
delay). A replica on a shared GPU runs ``gpu_share.slowdown`` times slower, evaluated when an
execution starts. An HPA scales each Deployment on its replicas' busy fraction every 15 s
(the HPA's default sync period) towards ``hpa_target``, with the default 300 s scale-down
stabilisation window (`kisim.core.config.HPAConfig`); it is the status-quo per-model HPA,
not the CPU-metric copy of `kisim.core.hpa`.

A model's GPU request (``nvidia.com/gpu`` slots per pod) can change while it runs (the
``platform-gpu`` action: a shared slot or a whole time-sliced GPU). That is a change of the
Deployment's pod template, rolled out as ``strategy: RollingUpdate`` with ``maxSurge: 100%``
and ``maxUnavailable: 0`` (Kubernetes docs, "Deployments", "Rolling Update Deployment"): every
replica of the new template is created at once, and one old pod is deleted for each new one
that becomes Ready, so ready capacity never falls below the desired replicas.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from kisim.core.devices import DeviceCalibration
from kisim.core.platform import ModelSpec
from twin.platform.cluster import Pod
from twin.platform.gpu_share import slowdown

HPA_SYNC_S = 15.0
"""--horizontal-pod-autoscaler-sync-period default."""
HPA_DOWN_WINDOW_S = 300.0
"""behavior.scaleDown.stabilizationWindowSeconds default."""


class ModelService:
    """A model's request queue, replicas, latencies and HPA."""

    def __init__(self, env: simpy.Environment, name: str, spec: ModelSpec,
                 device: DeviceCalibration, rng: np.random.Generator,
                 level: Callable[[float], float], new_pod: Callable[[ModelService], Pod],
                 delete_pod: Callable[[Pod], None]) -> None:  # fmt: skip
        self.env = env
        self.name = name
        self.spec = spec
        self.dev = device
        self.rng = rng
        self.level = level
        self._new_pod = new_pod
        self._delete_pod = delete_pod
        self.queue: deque[float] = deque()
        self.pods: list[Pod] = []
        self.ready: list[Pod] = []
        self.idle: list[tuple[Pod, simpy.Event]] = []
        self.latencies = array("d")  # seconds, 8 bytes per request (long runs stay small)
        self.rejected = 0
        self.arrived = 0  # requests that reached the model (queued or rejected)
        self._ok = 0  # answered within the SLO among latencies[:_ok_upto] (`within_slo`)
        self._ok_upto = 0
        self.busy_s = 0.0
        self._busy_mark = 0.0
        self._recs: deque[tuple[float, int]] = deque()
        self.desired = spec.replicas
        self.gpu_request = spec.gpu  # the pod template's nvidia.com/gpu slots
        self.floor = 0  # the predictive pre-scaler's lower bound (0: none)
        sigma = math.sqrt(math.log1p(device.service.noise.cv**2))
        self._noise = (-0.5 * sigma * sigma, sigma)
        env.process(self._arrivals())
        if spec.hpa_target is not None:
            env.process(self._hpa())

    # ------------------------------------------------------------------ replicas

    def reconcile(self) -> None:
        """The Deployment controller: create or delete pods of the current template towards
        `desired`, then retire old-template pods the new ones replace (module doc)."""
        live = [p for p in self.pods if p.state in ("pending", "running")
                and p.gpu == self.gpu_request]  # fmt: skip
        for _ in range(self.desired - len(live)):
            self.pods.append(self._new_pod(self))
        if len(live) > self.desired:
            self._delete_newest(live, len(live) - self.desired)
        self._retire_old()

    def _delete_newest(self, pods: list[Pod], n: int) -> None:
        """Delete `n` of `pods`, pending first, then the newest, as ReplicaSets do."""
        for p in sorted(pods, key=lambda p: (p.state != "pending", -p.created))[:n]:
            self._delete_pod(p)

    def _retire_old(self) -> None:
        """Old-template pods beyond what the Ready new ones do not yet cover go (maxUnavailable
        0: an old pod stays until a new one is Ready in its place)."""
        old = [p for p in self.pods if p.state in ("pending", "running")
               and p.gpu != self.gpu_request]  # fmt: skip
        if not old:
            return
        fresh = sum(1 for p in self.ready if p.gpu == self.gpu_request)
        keep = max(self.desired - fresh, 0)
        if len(old) > keep:
            self._delete_newest(old, len(old) - keep)

    def set_gpu_request(self, slots: int) -> None:
        """Change the pod template's GPU slots: a rolling update (module doc)."""
        if slots != self.gpu_request:
            self.gpu_request = slots
            self.reconcile()

    def started(self, pod: Pod, startup_s: float) -> None:
        """A pod was bound: it becomes ready after `startup_s`, then serves."""
        self.env.process(self._replica(pod, startup_s))

    def gone(self, pod: Pod) -> None:
        if pod in self.ready:
            self.ready.remove(pod)
        if pod in self.pods:
            self.pods.remove(pod)

    def _replica(self, pod: Pod, startup_s: float) -> Generator[Any, Any, None]:
        yield self.env.timeout(startup_s)
        if pod.state != "running":
            return
        self.ready.append(pod)
        self._retire_old()
        node = pod.node
        assert node is not None
        curve = self.dev.service
        while pod.state == "running":
            if not self.queue:
                ev = self.env.event()
                self.idle.append((pod, ev))
                yield ev
                continue
            b = min(len(self.queue), self.spec.max_batch_size)
            batch = [self.queue.popleft() for _ in range(b)]
            g = pod.gpu_index
            slow = 1.0
            if g is not None:
                node.gpu_busy[g] = node.gpu_busy.get(g, 0) + 1
                slow = slowdown(node.slots[pod.slots[0]], node.gpu_busy[g])
            t = curve.time_ms(b) * 1e-3 * slow * float(self.rng.lognormal(*self._noise))
            yield self.env.timeout(t)
            self.busy_s += t
            if g is not None:
                node.gpu_busy[g] -= 1
            now = self.env.now
            over = self.dev.overhead_ms * 1e-3
            self.latencies.extend(now - a + over for a in batch)

    # ------------------------------------------------------------------ load

    def _arrivals(self) -> Generator[Any, Any, None]:
        rate = self.spec.rate_rps
        if rate <= 0:
            return
        while True:  # thinning: candidates at the peak rate, kept with probability level
            yield self.env.timeout(float(self.rng.exponential(1.0 / rate)))
            lvl = self.level(self.env.now) if self.spec.follow_pattern else 1.0
            if self.rng.random() >= lvl:
                continue
            self.arrived += 1
            if self.spec.max_queue_size and len(self.queue) >= self.spec.max_queue_size:
                self.rejected += 1
                continue
            self.queue.append(self.env.now)
            while self.idle:  # wake an idle replica that still serves
                p, ev = self.idle.pop()
                ev.succeed()
                if p.state == "running":
                    break

    def _hpa(self) -> Generator[Any, Any, None]:
        spec = self.spec
        assert spec.hpa_target is not None
        last = 0.0
        while True:
            yield self.env.timeout(HPA_SYNC_S)
            now = self.env.now
            n = len(self.ready)
            busy = self.busy_s - self._busy_mark
            self._busy_mark = self.busy_s
            if n == 0:
                util = 1.0 if self.queue else 0.0
                want = max(self.desired, spec.min_replicas) if not self.queue else self.desired + 1
            else:
                util = busy / (n * (now - last))
                ratio = util / spec.hpa_target
                want = math.ceil(n * ratio) if abs(ratio - 1) > 0.1 else n  # tolerance 0.1
            last = now
            want = min(max(want, spec.min_replicas, self.floor), spec.max_replicas)
            self._recs.append((now, want))
            while self._recs and self._recs[0][0] < now - HPA_DOWN_WINDOW_S:
                self._recs.popleft()
            target = want if want >= self.desired else max(w for _, w in self._recs)
            if target != self.desired:
                self.desired = target
                self.reconcile()

    def prescale(self, level: float, target_util: float) -> None:
        """Raise the replica floor to what the forecast load `level` needs at `target_util`,
        counting a replica's batch-1 throughput (no batching assumed: conservative)."""
        spec = self.spec
        if spec.hpa_target is None:
            return
        rate = spec.rate_rps * (level if spec.follow_pattern else 1.0)
        per_replica = 1e3 / self.dev.service.time_ms(1)
        need = math.ceil(rate / (per_replica * target_util)) if rate > 0 else 0
        self.floor = min(max(need, spec.min_replicas), spec.max_replicas)
        if self.floor > self.desired:
            self.desired = self.floor
            self.reconcile()

    # ------------------------------------------------------------------ figures

    def within_slo(self) -> int:
        """Requests answered within the SLO so far (counted incrementally: an outside
        controller asks every step)."""
        n = len(self.latencies)
        if n > self._ok_upto:
            new = np.frombuffer(self.latencies, dtype=float)[self._ok_upto:n]
            self._ok += int(np.count_nonzero(new * 1e3 <= self.spec.slo_ms))
            self._ok_upto = n
        return self._ok

    def slo_met(self) -> tuple[int, int]:
        """(requests within the SLO, requests answered or rejected or still queued)."""
        lat = np.frombuffer(self.latencies, dtype=float) if self.latencies else np.empty(0)
        ok = int(np.count_nonzero(lat * 1e3 <= self.spec.slo_ms))
        return ok, len(lat) + self.rejected + len(self.queue)

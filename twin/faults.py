"""Faults in the twin: what breaks (the scenario's `faults` section, `kisim.core.faults`) and
how Kubernetes, the kubelet and Prometheus react, with the upstream timings.

`FaultInjector` runs one SimPy process per fault event and answers the hooks of
`twin.pods.PodManager` (image pulls, crash loops, lost nodes) and `twin.observe.Observer`
(scrapes, metrics-server). It is only built when a scenario has faults, so fault-free runs
take none of these paths.

Mechanisms and their sources:

* **CrashLoopBackOff** (kubelet, `pkg/kubelet/kuberuntime/kuberuntime_manager.go`
  `doBackOff` with `flowcontrol.Backoff` from client-go `util/flowcontrol/backoff.go`;
  `backOffPeriod = 10s`, `MaxContainerBackOff = 300s` in `pkg/kubelet/kubelet.go`): the first
  restart after a crash is immediate, later ones wait 10 s, 20 s, 40 s, ... capped at 300 s;
  an entry last updated more than 2 x 300 s = 10 min before the crash is forgotten, so a
  container that ran 10 minutes starts over (docs: Pod Lifecycle, "Container restarts").
* **OOM kill**: the kernel's memory cgroup kills the container when its working set (here
  the model plus in-flight and queued batch items, calibration `memory_*_gib`) exceeds the
  limit; the kubelet restarts it with the same back-off (reason OOMKilled, exit 137).
  Checked every `oom_check_s`, so a peak shorter than that can be missed.
* **Node loss** (kube-controller-manager node lifecycle controller): the node's lease stops;
  after `--node-monitor-grace-period` (50 s since v1.32, kubernetes/kubernetes #126287; 40 s
  before) the node is NotReady, tainted `node.kubernetes.io/unreachable` NoSchedule +
  NoExecute, and its pods are marked not Ready (endpoints removed). Until then the Service
  still routes to them and their requests fail (a black hole: one request waits, the rest are
  refused). The DefaultTolerationSeconds admission plugin gives every pod a 300 s toleration
  of that taint, after which the taint manager evicts them and the ReplicaSet replaces them.
  A node that returns reboots: its surviving pods' containers restart.
* **GPU loss** (NVIDIA device plugin health check, `ListAndWatch` sends the device as
  Unhealthy): allocatable `nvidia.com/gpu` drops; pods bound to the GPU crash and every
  restart fails at once (CUDA init) until the GPU is healthy again - a crash loop.
* **Image pulls** (kubelet `pkg/kubelet/images/image_manager.go`): a failed pull is
  ErrImagePull, then ImagePullBackOff with the same 10 s doubling back-off; a slow pull
  adds its delay to the container start.
* **Noisy neighbour**: service times of replicas on the node are stretched by `slowdown`
  for batches started while it lasts.
* **Prometheus** (docs "Staleness"; `scrape/scrape.go`): a failed scrape marks the target's
  series stale at once, so instant queries drop them and `rate()` empties once fewer than
  two samples remain in its range; with Prometheus itself down nothing is written, so
  gauges keep answering from the 5-min lookback. **metrics-server** gaps remove pods from
  the metrics API; the HPA (`kisim.core.hpa`) then treats them as missing, and with none
  left it holds (FailedGetResourceMetric).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import simpy

from kisim.core.config import Scenario
from kisim.core.faults import (
    CrashLoop,
    FaultEvent,
    GPULoss,
    ImagePull,
    MetricsServerGap,
    NodeLoss,
    NoisyNeighbour,
    PrometheusDown,
    ScrapeFailure,
    episode_events,
)
from twin import kernel as K
from twin.dataplane import DataPlane
from twin.observe import Observer
from twin.pods import Phase, Pod, PodManager
from twin.scheduler import Scheduler

SERIES = ("cpu", "mem", "success", "exec", "items", "queue_s", "compute_s")
"""The per-pod series `twin.observe` scrapes (marked stale when a scrape fails)."""
_FOREVER = 1e12


class FaultInjector:
    """Applies one episode's fault events to the twin and answers the lifecycle hooks."""

    def __init__(self, env: simpy.Environment, pods: PodManager, sched: Scheduler,
                 obs: Observer, dp: DataPlane, scenario: Scenario, seed: int) -> None:  # fmt: skip
        self.env, self.pods, self.sched, self.obs, self.dp = env, pods, sched, obs, dp
        self.cfg = scenario.faults
        self.horizon = scenario.duration_s
        self.events: list[FaultEvent] = episode_events(scenario, seed)
        self.down: dict[str, simpy.Event] = {}  # lost nodes -> fires when the node returns
        self.lost_gpus: set[int] = set()  # GPU.index of unhealthy GPUs
        self._gpu_faults: dict[int, int] = {}  # GPU.index -> losses in force (they may overlap)
        self._node_faults: dict[str, int] = {}  # node -> losses in force
        self.pulls: list[ImagePull] = []
        self.scrape_failures: list[ScrapeFailure] = []
        self.ms_gaps: list[MetricsServerGap] = []
        self.prometheus_down = 0
        self.noisy: dict[str, float] = {}  # node -> slowdown in force
        self._slowed: dict[int, float] = {}  # data-plane slot -> factor applied to its curve
        self._stale: set[str] = set()  # pods whose series were marked stale
        self.log: list[tuple[float, str, str]] = []  # (time, what, target): for tests, reports
        self.oom_kills = 0
        pods.faults = self
        obs.faults = self
        pods.on_kill.append(lambda p: obs.ms.pop(p.name, None))  # a new container's counters
        pods.on_ready.append(self._on_ready)
        for ev in self.events:
            env.process(self._run(ev))
        if self.cfg.oom_kill:
            env.process(self._oom())

    # ------------------------------------------------------------------ hooks: pods

    def restart_delay(self, pod: Pod) -> float:
        """CrashLoopBackOff delay before restarting `pod` after a crash now (kubelet
        `doBackOff`: in back-off until crash + entry; then `Backoff.Next` doubles it)."""
        now, cfg = self.env.now, self.cfg
        if pod.backoff_s is None or now - pod.backoff_at > cfg.backoff_reset_s:
            delay, pod.backoff_s = 0.0, cfg.backoff_initial_s  # no entry (or expired): at once
        else:
            delay = pod.backoff_s
            pod.backoff_s = min(2.0 * pod.backoff_s, cfg.backoff_max_s)
        pod.backoff_at = now + delay
        return delay

    def crash_delay(self, pod: Pod) -> float | None:
        """Seconds after its container starts that `pod` crashes (None: it does not)."""
        b = pod.binding
        if b is not None and b.gpu is not None and b.gpu.index in self.lost_gpus:
            return 0.0  # CUDA cannot open the device
        if pod.crash_until > self.env.now:
            ev = self._crash_loop_of(pod)
            return ev.crash_after_s if ev is not None else None
        return None

    def wait_node(self, pod: Pod) -> Generator[simpy.Event, Any, None]:
        """Nothing starts on a lost node: wait until it returns."""
        while pod.binding is not None and pod.binding.node.name in self.down:
            yield self.down[pod.binding.node.name]

    def pull(self, pod: Pod) -> Generator[simpy.Event, Any, None]:
        """The image pull: slow, or failing with ImagePullBackOff while a fault lasts."""
        attempt = 0
        while True:
            ev = next((e for e in self.pulls if e.pool == pod.pool), None)
            if ev is None:
                return
            if ev.mode == "slow":
                yield self.env.timeout(ev.pull_delay_s)
                return
            attempt += 1
            self.log.append((self.env.now, "ErrImagePull", pod.name))
            yield self.env.timeout(self.cfg.backoff(attempt + 1))  # 10 s, 20 s, ... 300 s

    # ------------------------------------------------------------------ hooks: observer

    def prometheus_up(self) -> bool:
        return self.prometheus_down == 0

    def scraped(self, pod: Pod, t: float) -> bool:
        """Whether Prometheus' scrape of the pod's targets succeeds at `t`; on the first
        failure its series get staleness markers."""
        failed = self._on_lost_node(pod) or any(
            f.pool is None or f.pool == pod.pool for f in self.scrape_failures
        )
        if not failed:
            self._stale.discard(pod.name)
            return True
        if pod.name not in self._stale:
            self._stale.add(pod.name)
            for s in SERIES:
                key = f"{s}:{pod.name}"
                if key in self.obs.store._series:
                    self.obs.store.drop(key, at=t)
        return False

    def metrics_served(self, pod: Pod) -> bool:
        """Whether metrics-server has the pod's usage (its kubelet answered, no gap)."""
        if self._on_lost_node(pod):
            return False
        return not any(g.pool is None or g.pool == pod.pool for g in self.ms_gaps)

    # ------------------------------------------------------------------ events

    def _run(self, ev: FaultEvent) -> Generator[simpy.Event, Any, None]:
        env = self.env
        yield env.timeout(max(ev.at_s - env.now, 0.0))
        end = ev.end(math.inf) if ev.duration_s is not None else math.inf
        self.log.append((env.now, f"{ev.kind} start", _target(ev)))
        undo = self._begin(ev)
        if end == math.inf:
            return
        yield env.timeout(end - env.now)
        undo()
        self.log.append((env.now, f"{ev.kind} end", _target(ev)))

    def _begin(self, ev: FaultEvent) -> Any:
        """Start a fault that lasts until undone; returns the undo."""
        if isinstance(ev, CrashLoop):
            up = [p for p in self.pods.active(ev.pool) if self.pods.running(p)]
            ready = sorted(up, key=lambda p: (p.phase is not Phase.READY, p.seq))[: ev.pods]
            for p in ready:
                p.crash_until = self.env.now + (ev.duration_s or math.inf)
                self.pods.crash(p, "crash")
            return lambda: None
        if isinstance(ev, NodeLoss):
            self._lose_node(ev.node)
            return lambda: self._restore_node(ev.node)
        if isinstance(ev, GPULoss):
            node = self.sched.node(ev.node)
            gpu = node.gpus[ev.gpu]
            self._gpu_faults[gpu.index] = self._gpu_faults.get(gpu.index, 0) + 1
            node.gpu_healthy[ev.gpu] = False
            self.lost_gpus.add(gpu.index)
            for p in self._all():
                if p.binding is not None and p.binding.gpu is gpu:
                    self.pods.crash(p, "gpu")

            def undo_gpu() -> None:
                self._gpu_faults[gpu.index] -= 1
                if self._gpu_faults[gpu.index] == 0:  # overlapping losses: the last one ends it
                    node.gpu_healthy[ev.gpu] = True
                    self.lost_gpus.discard(gpu.index)
                    self.pods.capacity_changed()

            return undo_gpu
        if isinstance(ev, NoisyNeighbour):
            self.noisy[ev.node] = self.noisy.get(ev.node, 1.0) * ev.slowdown
            for p in self._on_node(ev.node):
                if p.replica is not None:
                    self._slow(p.replica.slot, ev.slowdown)

            def undo_noise() -> None:
                self.noisy[ev.node] /= ev.slowdown
                for p in self._on_node(ev.node):
                    if p.replica is not None:
                        self._slow(p.replica.slot, 1.0 / ev.slowdown)

            return undo_noise
        lists: dict[type, list[Any]] = {ImagePull: self.pulls, ScrapeFailure: self.scrape_failures,
                                        MetricsServerGap: self.ms_gaps}  # fmt: skip
        if isinstance(ev, PrometheusDown):
            self.prometheus_down += 1

            def undo_prom() -> None:
                self.prometheus_down -= 1

            return undo_prom
        lst = lists[type(ev)]
        lst.append(ev)
        return lambda: lst.remove(ev)

    def _lose_node(self, name: str) -> None:
        """The node stops; a loss while it is already down only prolongs the outage."""
        self._node_faults[name] = self._node_faults.get(name, 0) + 1
        if name in self.down:
            return
        outage = self.down[name] = self.env.event()
        for p in self._on_node(name):
            if p.replica is not None:
                _black_hole(self.dp, p.replica.slot)
        self.env.process(self._node_controller(name, outage))

    def _node_controller(self, name: str, outage: simpy.Event) -> Generator[simpy.Event, Any, None]:
        """The node lifecycle controller and taint manager for one outage of a node."""
        env, cfg = self.env, self.cfg
        yield env.timeout(cfg.node_monitor_grace_period_s)
        if self.down.get(name) is not outage:
            return  # back within the grace period
        self.log.append((env.now, "NodeNotReady", name))
        self.sched.node(name).schedulable = False  # node.kubernetes.io/unreachable:NoSchedule
        for p in self._on_node(name):
            self.pods.crash(p, "node")  # Ready=False: endpoints go, queued requests fail
        yield env.timeout(cfg.toleration_s)
        if self.down.get(name) is not outage:
            return
        self.log.append((env.now, "TaintManagerEviction", name))
        for p in self._on_node(name):
            self.pods.evict(p)

    def _restore_node(self, name: str) -> None:
        """The last loss of the node ends: it is Ready and schedulable again and reboots."""
        self._node_faults[name] -= 1
        if self._node_faults[name] > 0:
            return
        self.sched.node(name).schedulable = True
        back = self.down.pop(name)
        for p in self._on_node(name):
            self.pods.crash(p, "node")  # the node rebooted: containers start again
        back.succeed()
        self.pods.capacity_changed()

    def _oom(self) -> Generator[simpy.Event, Any, None]:
        while True:
            yield self.env.timeout(self.cfg.oom_check_s)
            for p in self._all():
                r = p.replica
                if r is not None and p.phase is Phase.READY and \
                        r.memory_gib() > p.cfg.resources.memory_gib + 1e-9:  # fmt: skip
                    if self.pods.crash(p, "oom"):
                        self.oom_kills += 1
                        self.log.append((self.env.now, "OOMKilled", p.name))

    # ------------------------------------------------------------------ helpers

    def _on_ready(self, pod: Pod) -> None:
        b = pod.binding
        if b is not None and pod.replica is not None and self.noisy.get(b.node.name, 1.0) != 1.0:
            self._slow(pod.replica.slot, self.noisy[b.node.name])

    def _slow(self, slot: int, factor: float) -> None:
        self.dp.curve[slot, :] *= factor
        self._slowed[slot] = self._slowed.get(slot, 1.0) * factor

    def _crash_loop_of(self, pod: Pod) -> CrashLoop | None:
        now = self.env.now
        return next((e for e in self.events if isinstance(e, CrashLoop) and e.pool == pod.pool
                     and e.at_s <= now < e.end(math.inf)), None)  # fmt: skip

    def _all(self) -> list[Pod]:
        return [p for ps in self.pods.pods.values() for p in list(ps)]

    def _on_node(self, name: str) -> list[Pod]:
        return [p for p in self._all() if p.binding is not None and p.binding.node.name == name
                and not p.deleting]  # fmt: skip

    def _on_lost_node(self, pod: Pod) -> bool:
        return pod.binding is not None and pod.binding.node.name in self.down


def _black_hole(dp: DataPlane, slot: int) -> None:
    """A replica on a dead node: it still gets traffic, one request waits for ever, the rest
    are refused (as connections to a dead pod IP fail). Batching is turned off so nothing
    it queues ever executes; the slot is abandoned when the pod is marked not Ready."""
    dp.ri[slot, K.CAP] = 1 << 40
    dp.ri[slot, K.NPREF] = 0
    dp.ri[slot, K.MAXQ] = 1
    dp.rf[slot, K.DELAY] = _FOREVER


def _target(ev: FaultEvent) -> str:
    for attr in ("pool", "node"):
        v = getattr(ev, attr, None)
        if v is not None:
            return str(v)
    return "cluster"

"""Deployments and pod lifecycle: Pending -> bound -> containers start -> model load ->
readiness probe -> Ready; deletion drains in-flight requests, then frees the node.

With faults (`twin.faults.FaultInjector` set as `PodManager.faults`) a running container
can crash: its endpoint goes, queued requests fail (executing batches still complete:
the twin has no way to fail a batch on the device), and the kubelet restarts it after
the CrashLoopBackOff delay; image pulls can fail or be slow, and a lost node holds its
pods back until it returns or they are evicted. Without faults none of this runs and
the lifecycle is the fault-free one, event for event.

Scale-down picks victims as the ReplicaSet controller does (`getPodsToDelete` /
`ActivePodsWithRanks` in pkg/controller/replicaset): unscheduled before
scheduled, not-ready before ready, and among equals the newest first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

import simpy

from kisim.core.config import Dist, PoolConfig, Scenario
from twin.dataplane import DataPlane
from twin.draws import Draws, multiplier
from twin.replica import Replica
from twin.scheduler import Binding, Scheduler

if TYPE_CHECKING:
    from twin.faults import FaultInjector


class Phase(str, Enum):
    PENDING = "Pending"  # not bound, or bound and containers not started yet
    STARTING = "Starting"  # Running, containers up, not Ready (model loading, probe)
    READY = "Ready"
    TERMINATING = "Terminating"
    GONE = "Gone"


@dataclass(eq=False)
class Pod:
    name: str
    pool: str
    seq: int
    created: float
    cfg: PoolConfig
    phase: Phase = Phase.PENDING
    binding: Binding | None = None
    bound_at: float | None = None
    started_at: float | None = None  # pod.Status.StartTime (kubelet picked it up)
    running_at: float | None = None  # containers started
    ready_at: float | None = None
    deleting: bool = False
    replica: Replica | None = None
    proc: simpy.Process | None = field(default=None, repr=False)
    restarts: int = 0  # container restarts (kube-state-metrics restarts_total)
    backoff_s: float | None = None  # kubelet back-off entry: current delay, None = none
    backoff_at: float = 0.0  # ... and when it was last updated
    crash_until: float = -1.0  # a crash-loop fault makes every start before this crash
    up: bool = False  # its container runs (faults only: a crash can hit it)


class PodManager:
    """Owns Deployments (desired replicas per pool), their pods, and cost accounting."""

    def __init__(self, env: simpy.Environment, dp: DataPlane, sched: Scheduler,
                 scenario: Scenario, seed: int) -> None:  # fmt: skip
        self.env, self.dp, self.sched = env, dp, sched
        self.cal = scenario.calibration
        # the pod templates of this run: a rollout replaces a pool's (`twin.rollout`), never
        # edits one in place, so the scenario's own objects are shared, not deep-copied (a
        # deep copy of pydantic models was a third of a reset)
        self.cfg: dict[str, PoolConfig] = dict(scenario.pools)
        self.desired = {p: 0 for p in self.cfg}
        self.pods: dict[str, list[Pod]] = {p: [] for p in self.cfg}
        self._seq = 0
        self._capacity = env.event()
        self.load_noise = {
            p: Draws(seed, f"load/{p}", multiplier(
                Dist(kind="lognormal", cv=self.cal.devices[c.device].startup.model_load_cv)))
            for p, c in self.cfg.items()
        }  # fmt: skip
        self.replica_s = {p: 0.0 for p in self.cfg}
        self.pending_s = 0.0
        self._t_acc = 0.0
        self.on_ready: list[Callable[[Pod], None]] = []
        self.on_gone: list[Callable[[Pod], None]] = []
        self.faults: FaultInjector | None = None  # set by twin.faults when the run has faults
        self.on_kill: list[Callable[[Pod], None]] = []  # a container died (faults only)

    # ------------------------------------------------------------------ queries

    def active(self, pool: str) -> list[Pod]:
        return [p for p in self.pods.get(pool, []) if not p.deleting]

    def counts(self, pool: str) -> tuple[int, int, int]:
        """(desired, ready, pending) as kube-state-metrics would report them."""
        act = self.active(pool)
        ready = sum(p.phase is Phase.READY for p in act)
        pending = sum(p.binding is None for p in act)
        return self.desired.get(pool, 0), ready, pending

    def accrue(self) -> None:
        """Integrate replica-seconds (bound pods) and pending-seconds up to now."""
        now = self.env.now
        dt = now - self._t_acc
        if dt > 0:
            for pool, pods in self.pods.items():
                self.replica_s[pool] += dt * sum(p.binding is not None for p in pods)
                self.pending_s += dt * sum(p.binding is None and not p.deleting for p in pods)
        self._t_acc = now

    # ------------------------------------------------------------------ scaling

    def scale(self, pool: str, n: int, warm: bool = False) -> None:
        """Set the Deployment's replicas; the ReplicaSet creates or deletes pods now.

        `warm` pods skip start-up (scheduling still applies): a run's initial replicas.
        """
        if pool not in self.cfg:
            return
        self.desired[pool] = n
        act = self.active(pool)
        for _ in range(n - len(act)):
            self._create(pool, warm)
        if len(act) > n:
            def rank(p: Pod) -> tuple[int, int]:
                level = 0 if p.binding is None else (1 if p.phase is not Phase.READY else 2)
                return level, -p.seq

            for victim in sorted(act, key=rank)[: len(act) - n]:
                self._delete(victim)

    def _create(self, pool: str, warm: bool = False) -> None:
        self.accrue()
        self._seq += 1
        pod = Pod(f"{pool}-{self._seq}", pool, self._seq, self.env.now, self.cfg[pool].model_copy())
        self.pods[pool].append(pod)
        pod.proc = self.env.process(self._lifecycle(pod, warm))

    def _lifecycle(self, pod: Pod, warm: bool):  # type: ignore[no-untyped-def]
        st = self.cal.devices[pod.cfg.device].startup
        env = self.env
        try:
            yield env.timeout(0.0 if warm else st.schedule_s)
            while True:
                r = pod.cfg.resources
                b = self.sched.bind(r.cpu, r.memory_gib, r.gpu, pod.cfg.device)
                if b is not None:
                    break
                yield self._capacity  # retried when a pod frees resources
            self.accrue()
            pod.binding, pod.bound_at, pod.started_at = b, env.now, env.now
            if self.faults is None:
                yield from self._start(pod, warm)
                return
            yield from self._run_with_faults(pod, warm)
        except simpy.Interrupt:
            self._gone(pod)

    def _start(self, pod: Pod, warm: bool):  # type: ignore[no-untyped-def]
        """Containers start, the model loads, the readiness probe passes: the pod is Ready."""
        dev = self.cal.devices[pod.cfg.device]
        st = dev.startup
        env = self.env
        b = pod.binding
        assert b is not None
        if warm:
            pod.phase, pod.running_at = Phase.STARTING, env.now - 3600.0
            pod.started_at = env.now - 3600.0
        else:
            yield env.timeout(st.container_start_s)
            pod.phase, pod.running_at = Phase.STARTING, env.now
            loaded = env.now + st.model_load_s * self.load_noise[pod.pool].take()
            first = env.now + st.readiness_initial_delay_s
            k = max(0, math.ceil((loaded - first) / st.readiness_period_s - 1e-12))
            yield env.timeout(first + k * st.readiness_period_s - env.now)
        self._ready(pod)

    def _ready(self, pod: Pod) -> None:
        b = pod.binding
        assert b is not None
        dev = self.cal.devices[pod.cfg.device]
        rep = self.dp.add_replica(pod.name, pod.pool, pod.cfg, dev, b.gpu,
                                  self.sched.nodes.index(b.node))  # fmt: skip
        pod.replica, pod.phase, pod.ready_at = rep, Phase.READY, self.env.now
        self.dp.add_ready(rep)
        for cb in self.on_ready:
            cb(pod)

    def _run_with_faults(self, pod: Pod, warm: bool):  # type: ignore[no-untyped-def]
        """The lifecycle under faults: image pull (may fail and back off), start, and on a
        crash (an `Interrupt` with a cause other than "deleted", or the crash a crash loop
        schedules) the kubelet's restart after its back-off, for as long as the pod lives."""
        fx = self.faults
        assert fx is not None
        env = self.env
        st = self.cal.devices[pod.cfg.device].startup
        while True:
            try:
                yield from fx.wait_node(pod)  # a lost node starts nothing until it returns
                if not warm:
                    yield from fx.pull(pod)
                    yield env.timeout(st.container_start_s)
                    pod.phase, pod.running_at, pod.up = Phase.STARTING, env.now, True
                    loaded = env.now + st.model_load_s * self.load_noise[pod.pool].take()
                    first = env.now + st.readiness_initial_delay_s
                    k = max(0, math.ceil((loaded - first) / st.readiness_period_s - 1e-12))
                    ready_at = first + k * st.readiness_period_s
                    crash = fx.crash_delay(pod)
                    if crash is not None and env.now + crash < ready_at:
                        yield env.timeout(crash)  # crashes before it is Ready
                        raise _Crash
                    yield env.timeout(ready_at - env.now)
                    yield from fx.wait_node(pod)
                else:
                    pod.phase, pod.running_at = Phase.STARTING, env.now - 3600.0
                    pod.started_at, pod.up = env.now - 3600.0, True
                warm = False
                self._ready(pod)
                crash = fx.crash_delay(pod)
                # wait for the crash a crash loop schedules, or for one from outside
                yield env.timeout(max(crash - (env.now - pod.running_at), 0.0)) \
                    if crash is not None else env.event()
                if pod.deleting:
                    return  # scaled down meanwhile: it drains and goes (`_delete`)
                raise _Crash
            except (_Crash, simpy.Interrupt) as e:
                if isinstance(e, simpy.Interrupt) and e.cause == "deleted":
                    raise
            self.kill(pod)
            if pod.deleting:
                return
            yield env.timeout(fx.restart_delay(pod))  # CrashLoopBackOff

    def running(self, pod: Pod) -> bool:
        """Whether a crash can hit the pod now: its container runs, it is not going away,
        and its lifecycle can be told (faults are on)."""
        return (self.faults is not None and pod.up and not pod.deleting
                and pod.phase in (Phase.STARTING, Phase.READY) and pod.proc is not None
                and pod.proc.is_alive)  # fmt: skip

    def crash(self, pod: Pod, cause: str = "crash") -> bool:
        """The pod's container dies now (a crash, an OOM kill, a lost GPU or node)."""
        if not self.running(pod):
            return False
        assert pod.proc is not None
        pod.proc.interrupt(cause)
        return True

    def kill(self, pod: Pod) -> None:
        """The container is gone: the endpoint goes and queued requests fail; the pod stays
        bound and Running (not Ready) while the kubelet backs off."""
        rep = pod.replica
        if rep is not None:
            self.dp.start_drain(rep, lambda _r, _t: None)
            self.dp.drop_queue(rep)
            pod.replica = None
        if pod.phase is not Phase.GONE and not pod.deleting:
            pod.phase = Phase.STARTING
        pod.ready_at = None
        pod.up = False
        pod.restarts += 1
        for cb in self.on_kill:
            cb(pod)

    def evict(self, pod: Pod) -> None:
        """The taint manager deletes the pod (no drain: its node is gone); the ReplicaSet
        replaces it."""
        if pod.deleting or pod.phase is Phase.GONE:
            return
        self.accrue()
        pod.deleting = True
        if pod.replica is not None:
            self.dp.start_drain(pod.replica, lambda _r, _t: None)
            self.dp.drop_queue(pod.replica)
            pod.replica = None
        if pod.proc is not None and pod.proc.is_alive:
            pod.proc.interrupt("deleted")
        else:
            self._gone(pod)
        self.scale(pod.pool, self.desired[pod.pool])

    def capacity_changed(self) -> None:
        """Wake Pending pods: allocatable capacity came back (a node or GPU returned)."""
        cap, self._capacity = self._capacity, self.env.event()
        cap.succeed()

    def _delete(self, pod: Pod) -> None:
        self.accrue()
        pod.deleting = True
        if pod.replica is None:
            if pod.proc is not None and pod.proc.is_alive:
                pod.proc.interrupt("deleted")
            return
        pod.phase = Phase.TERMINATING
        self.dp.start_drain(pod.replica, lambda rep, t: self._drained(pod, t))
        self.env.process(self._grace(pod))

    def _grace(self, pod: Pod):  # type: ignore[no-untyped-def]
        yield self.env.timeout(self.cal.devices[pod.cfg.device].startup.termination_grace_s)
        if pod.phase is Phase.TERMINATING and pod.replica is not None:
            self.dp.drop_queue(pod.replica)

    def _drained(self, pod: Pod, t: float) -> None:
        # Reported by the data plane, possibly ahead of SimPy's clock: finish at time t.
        if pod.phase is not Phase.TERMINATING:
            return
        pod.phase = Phase.GONE  # no second call; resources are freed at the drain time
        ev = self.env.timeout(max(t - self.env.now, 0.0))
        ev.callbacks.append(lambda _e: self._gone(pod))

    def _gone(self, pod: Pod) -> None:
        self.accrue()
        pod.phase = Phase.GONE
        if pod in self.pods[pod.pool]:
            self.pods[pod.pool].remove(pod)
        if pod.binding is not None:
            self.sched.release(pod.binding)
            pod.binding = None
            cap, self._capacity = self._capacity, self.env.event()
            cap.succeed()
        for cb in self.on_gone:
            cb(pod)


class _Crash(Exception):
    """A scheduled crash of a crash-looping container (raised inside its lifecycle)."""

"""Batch workflows on the platform: arrivals per tenant, per-user admission, quota admission
of every step pod in a Kueue-style cohort, step execution with retries, checkpoints, the
result cache, and restarts after preemption.

Each step attempt is a Kueue *workload*: it waits until its tenant's queue admits it
(`fairshare.admit`: within the cohort's free quota; a tenant within its nominal quota
reclaims borrowed quota from over-quota tenants, `fairshare.reclaimable`); waiting tenants
are served lowest borrowed-share-per-weight first (Kueue fair sharing). Only then is its pod
created for the scheduler.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from kisim.core.platform import PlatformConfig, StepSpec, TenantSpec, WorkflowSpec
from twin.platform import workflows as wf
from twin.platform.admission import UserQueue
from twin.platform.cache import ResultCache
from twin.platform.cluster import Pod
from twin.platform.fairshare import admit, reclaimable
from twin.platform.gpu_share import slowdown

if TYPE_CHECKING:  # pragma: no cover
    from twin.platform.world import PlatformWorld


@dataclass(eq=False)
class Run:
    """One workflow instance."""

    id: int
    tenant: str
    template: str
    spec: WorkflowSpec
    user: int
    input_id: int
    submitted: float
    started_at: float | None = None
    ended_at: float | None = None
    failed: bool = False
    quality: str | None = None
    finished: set[str] = field(default_factory=set)
    launched: set[str] = field(default_factory=set)
    failures: dict[str, int] = field(default_factory=dict)
    kept: dict[str, float] = field(default_factory=dict)  # checkpointed work per step
    total: dict[str, float] = field(default_factory=dict)  # each step's drawn duration
    pods: list[Pod] = field(default_factory=list)


@dataclass(eq=False)
class Attempt:
    """One try of one step: a Kueue workload, then a pod."""

    run: Run
    step: StepSpec
    work: float  # seconds of work left (on a dedicated device)
    queued: float  # entered the admission queue
    pod: Pod | None = None
    proc: simpy.Process | None = None
    began: float = 0.0
    slow: float = 1.0


class BatchRunner:
    """Every tenant's workflows."""

    def __init__(self, world: PlatformWorld, cfg: PlatformConfig, seed_rng: Callable[[str], np.random.Generator]) -> None:  # noqa: E501
        self.w = world
        self.env: simpy.Environment = world.env
        self.cfg = cfg
        self.rng = seed_rng("batch")
        self.cache = ResultCache(cfg.cache.capacity)
        self.queues = {t: UserQueue[Run](ts.per_user_running, ts.max_queued)
                       for t, ts in cfg.tenants.items()}  # fmt: skip
        self.used = {t: [0.0, 0.0] for t in cfg.tenants}  # admitted cpu, gpu
        self.waiting: list[Attempt] = []
        self.runs: list[Run] = []
        self.inputs: dict[str, int] = dict.fromkeys(cfg.tenants, 0)
        self.queue_s: dict[str, list[float]] = {t: [] for t in cfg.tenants}
        self.preempted: dict[str, int] = dict.fromkeys(cfg.tenants, 0)
        self.reclaims = 0
        self.reclaimed: dict[str, int] = dict.fromkeys(cfg.tenants, 0)
        self.retries = 0
        self.completed: dict[str, int] = dict.fromkeys(cfg.tenants, 0)
        # tenants whose queue admits no new step workloads (Kueue ClusterQueue
        # `stopPolicy: Hold`: admitted workloads keep running, nothing new is admitted)
        self.held: set[str] = set()
        self._ids = itertools.count()
        self.cap = [sum(t.quota_cpu for t in cfg.tenants.values()),
                    sum(t.quota_gpu for t in cfg.tenants.values())]  # fmt: skip
        for t, ts in cfg.tenants.items():
            for name, per_hour in ts.workflows.items():
                if per_hour > 0:
                    self.env.process(self._arrivals(t, ts, name, per_hour, seed_rng(f"wf/{t}/{name}")))  # noqa: E501

    def preempted_by_reclaim(self, tenant: str) -> int:
        """Step pods of `tenant` evicted to give another tenant back its quota."""
        return self.reclaimed[tenant]

    # ------------------------------------------------------------------ workflows

    def _arrivals(self, tenant: str, ts: TenantSpec, name: str, per_hour: float,
                  rng: np.random.Generator) -> Generator[Any, Any, None]:  # fmt: skip
        while True:
            yield self.env.timeout(float(rng.exponential(3600.0 / per_hour)))
            n = self.inputs[tenant]
            if n and rng.random() < ts.repeat_input_prob:
                input_id = int(rng.integers(n))
            else:
                input_id = n
                self.inputs[tenant] = n + 1
            self.submit(tenant, name, int(rng.integers(ts.users)), input_id)

    def submit(self, tenant: str, template: str, user: int = 0, input_id: int = 0) -> Run:
        """A user submits a workflow (to the coordinator): queued, started or rejected."""
        run = Run(next(self._ids), tenant, template, self.cfg.workflows[template], user,
                  input_id, float(self.env.now))  # fmt: skip
        self.runs.append(run)
        if self.queues[tenant].submit(run.user, run):
            self._start(tenant)
        else:
            run.failed = True
        return run

    def _start(self, tenant: str) -> None:
        for _, run in self.queues[tenant].pop_startable():
            run.started_at = self.env.now
            self._advance(run)

    def _advance(self, run: Run) -> None:
        if run.failed:
            return
        while True:
            todo, skip = wf.ready(run.spec, run.finished, run.launched, run.quality)
            for s in skip:
                run.launched.add(s.name)
                run.finished.add(s.name)
            for s in todo:
                run.launched.add(s.name)
                self._launch(run, s)
            if not skip:
                break
        if wf.done(run.spec, run.finished) and run.ended_at is None:
            run.ended_at = self.env.now
            self.completed[run.tenant] += 1
            self.queues[run.tenant].finished(run.user)
            self._start(run.tenant)

    def _launch(self, run: Run, step: StepSpec) -> None:
        key = (run.tenant, run.template, run.input_id, step.name)
        if step.cacheable and self.cache.lookup(key):
            self.env.process(self._cached(run, step))
            return
        if step.name not in run.total:
            run.total[step.name] = wf.sample_duration(self.rng, step)
        work = run.total[step.name] - run.kept.get(step.name, 0.0)
        self.waiting.append(Attempt(run, step, max(work, 0.0), self.env.now))
        self.w.kick()

    def _cached(self, run: Run, step: StepSpec) -> Generator[Any, Any, None]:
        yield self.env.timeout(0)
        self._succeeded(run, step)

    def _succeeded(self, run: Run, step: StepSpec) -> None:
        if step.assesses_quality:
            run.quality = wf.sample_quality(self.rng, run.spec)
        if step.cacheable:
            self.cache.store((run.tenant, run.template, run.input_id, step.name))
        run.finished.add(step.name)
        self._advance(run)

    def _fail_run(self, run: Run) -> None:
        run.failed = True
        run.ended_at = self.env.now
        self.queues[run.tenant].finished(run.user)
        self.waiting = [a for a in self.waiting if a.run is not run]
        for p in list(run.pods):
            self.w.cluster.evict(p, "workflow-failed", 0.0)
        self._start(run.tenant)

    # ------------------------------------------------------------------ admission

    def admit_pass(self) -> None:
        """Admit waiting step workloads (module doc); create their pods."""
        def share(a: Attempt) -> tuple[float, float]:
            ts = self.cfg.tenants[a.run.tenant]
            u = self.used[a.run.tenant]
            borrowed = max(u[0] - ts.quota_cpu, 0) / max(ts.quota_cpu, 1e-9) + max(
                u[1] - ts.quota_gpu, 0) / max(ts.quota_gpu, 1e-9)
            return borrowed / max(ts.over_quota_weight, 1e-9), a.queued

        for a in sorted(self.waiting, key=share):
            t = a.run.tenant
            if t in self.held:
                continue
            req = (a.step.cpu, float(a.step.gpu))
            ok = self._fits(t, req)
            if not ok and self._reclaim(t, req):
                ok = self._fits(t, req)
            if ok:
                self.waiting.remove(a)
                self.used[t][0] += req[0]
                self.used[t][1] += req[1]
                self._create_pod(a)

    def _fits(self, tenant: str, req: tuple[float, float]) -> bool:
        """Kueue admission of `req` for `tenant` on cores and GPU slots (`fairshare.admit`)."""
        ts = self.cfg.tenants[tenant]
        quota = (ts.quota_cpu, ts.quota_gpu)
        limit = tuple(float("inf") if x is None else x
                      for x in (ts.borrowing_limit_cpu, ts.borrowing_limit_gpu))  # fmt: skip
        tot = [sum(u[i] for u in self.used.values()) for i in (0, 1)]
        return all(admit(self.used[tenant][i], req[i], quota[i], tot[i], self.cap[i], limit[i])
                   for i in (0, 1))  # fmt: skip

    def _reclaim(self, tenant: str, req: tuple[float, float]) -> bool:
        """Evict borrowers' workloads, newest and least important first, until `tenant`'s
        request fits — only when it stays within its guaranteed quota (reclaim restores
        guarantees) and only what is needed; True when enough was freed."""
        quotas = [{t: ts.quota_cpu for t, ts in self.cfg.tenants.items()},
                  {t: ts.quota_gpu for t, ts in self.cfg.tenants.items()}]  # fmt: skip
        need = [req[i] - (self.cap[i] - sum(u[i] for u in self.used.values())) for i in (0, 1)]
        if all(n <= 1e-9 for n in need):
            return False
        for i in (0, 1):
            used = {t: u[i] for t, u in self.used.items()}
            if need[i] > 1e-9 and not reclaimable(used, quotas[i], tenant, need[i]):
                return False
        freed = [0.0, 0.0]
        for p in sorted(self.w.cluster_step_pods(), key=lambda p: (p.priority, -p.created)):
            if all(freed[i] >= need[i] - 1e-9 for i in (0, 1)):
                break
            if p.tenant == tenant:
                continue
            held = (p.cpu, float(p.gpu))
            useful = [i for i in (0, 1) if freed[i] < need[i] - 1e-9 and held[i] > 0
                      and self.used[p.tenant][i] > quotas[i][p.tenant] + 1e-9]  # fmt: skip
            if not useful:
                continue
            self.reclaims += 1
            self.reclaimed[p.tenant] += 1
            self.w.cluster.evict(p, "reclaimed", self.cfg.termination_grace_s)
            freed = [freed[0] + held[0], freed[1] + held[1]]
        return all(freed[i] >= need[i] - 1e-9 for i in (0, 1))

    def _create_pod(self, a: Attempt) -> None:
        step, run = a.step, a.run
        # without a nodeSelector: GPU steps on GPU pools, CPU steps on CPU pools (GPU nodes
        # carry the usual nvidia.com/gpu NoSchedule taint that only GPU pods tolerate)
        pools = ({step.node_pool} if step.node_pool else
                 {n for n, p in self.cfg.node_pools.items() if (p.gpus > 0) == (step.gpu > 0)})
        pc = self.cfg.priority_classes[run.spec.priority_class]
        pod = Pod(f"{run.template}-{run.id}-{step.name}", "step", run.tenant,
                  run.spec.priority_class, pc.value, pc.preemption_policy, step.cpu,
                  step.memory_gib, step.gpu, frozenset(pools), self.env.now)  # fmt: skip
        pod.on_bound = lambda p: self._bound(a)
        pod.on_evicted = lambda p, why: self._evicted(a, why)
        a.pod = pod
        run.pods.append(pod)
        self.w.cluster.submit(pod)
        self.w.kick()

    # ------------------------------------------------------------------ execution

    def _bound(self, a: Attempt) -> None:
        self.queue_s[a.run.tenant].append(self.env.now - a.queued)
        a.proc = self.env.process(self._execute(a))

    def _execute(self, a: Attempt) -> Generator[Any, Any, None]:
        pod = a.pod
        assert pod is not None and pod.node is not None
        node, g = pod.node, pod.gpu_index
        a.began = self.env.now
        if g is not None:
            node.gpu_busy[g] = node.gpu_busy.get(g, 0) + 1
            a.slow = slowdown(node.slots[pod.slots[0]], node.gpu_busy[g])
        fails = self.rng.random() < a.step.fail_prob
        work = a.work * (float(self.rng.random()) if fails else 1.0)
        try:
            yield self.env.timeout(work * a.slow)
        except simpy.Interrupt:
            return
        finally:
            if g is not None:
                node.gpu_busy[g] -= 1
        self._release(a)
        run, step = a.run, a.step
        if not fails:
            run.kept.pop(step.name, None)
            self._succeeded(run, step)
            return
        kept = run.kept.get(step.name, 0.0) + work
        run.kept[step.name] = wf.resume_point(kept, step.checkpoint_s)
        n = run.failures[step.name] = run.failures.get(step.name, 0) + 1
        if not wf.may_retry(n, step.retry):
            self._fail_run(run)
            return
        self.retries += 1
        self.env.process(self._retry(run, step, wf.retry_delay(n, step.retry)))

    def _retry(self, run: Run, step: StepSpec, delay: float) -> Generator[Any, Any, None]:
        yield self.env.timeout(delay)
        if not run.failed:
            self._launch(run, step)

    def _release(self, a: Attempt) -> None:
        pod = a.pod
        assert pod is not None
        self.used[a.run.tenant][0] -= a.step.cpu
        self.used[a.run.tenant][1] -= a.step.gpu
        if pod in a.run.pods:
            a.run.pods.remove(pod)
        self.w.cluster.release(pod)
        self.w.kick()

    def _evicted(self, a: Attempt, why: str) -> None:
        """Preempted, reclaimed, drained or interrupted: keep the checkpointed work, requeue."""
        pod = a.pod
        assert pod is not None
        run = a.run
        self.used[run.tenant][0] -= a.step.cpu
        self.used[run.tenant][1] -= a.step.gpu
        if pod in run.pods:
            run.pods.remove(pod)
        if a.proc is not None and a.proc.is_alive:
            a.proc.interrupt()
            done = (self.env.now - a.began) / a.slow
            run.kept[a.step.name] = wf.resume_point(run.kept.get(a.step.name, 0.0) + done,
                                                    a.step.checkpoint_s)  # fmt: skip
        if why == "workflow-failed" or run.failed:
            return
        if why != "scaled-down":
            self.preempted[run.tenant] += 1
        self._launch(run, a.step)

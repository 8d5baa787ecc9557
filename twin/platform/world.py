"""The shared platform on the twin's clock: node pools with the Cluster Autoscaler and spot
interruptions, model Deployments, batch workflows, and one scheduler over all of them.

It runs beside the single-service twin on the same SimPy environment and random seed (its
own named streams, so the service's numbers do not move), and is built only when a scenario
has a ``platform:`` section. Pods of every kind meet on the same nodes: that is where a batch
backlog costs interactive SLO (GPU time-slices, preemption, nodes still provisioning).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from kisim.core.config import Scenario
from kisim.core.platform import NodePoolSpec, PlatformConfig
from twin.draws import stream_seed
from twin.platform import autoscaler as ca
from twin.platform.batch import BatchRunner
from twin.platform.cluster import Cluster, Node, Pod
from twin.platform.gpu_share import slots_of
from twin.platform.report import node_hour_price
from twin.platform.serving import ModelService
from twin.platform.spot import next_interruption


class PlatformWorld:
    """Everything of the ``platform:`` section, running on `env`."""

    def __init__(self, env: simpy.Environment, sc: Scenario, seed: int,
                 level: Callable[[float], float]) -> None:  # fmt: skip
        assert sc.platform is not None
        self.env = env
        self.sc = sc
        self.cfg: PlatformConfig = sc.platform
        self.seed = seed
        self.level = level
        self.cluster = Cluster(lambda: float(env.now), self._terminate)
        self.ca_rng = self._rng("autoscaler")
        self.spot_rng = self._rng("spot")
        a = self.cfg.autoscaler
        self.scale_down = ca.ScaleDown(a.scale_down_utilization_threshold,
                                       a.scale_down_unneeded_time_s,
                                       a.scale_down_delay_after_add_s)
        self.all_nodes: list[Node] = []
        self.scale_ups = self.scale_downs = self.interruptions = 0
        self._ids = itertools.count()
        self._kicked = False
        self.pool_floor: dict[str, int] = {}  # node-pool floors set by an outside controller
        for pool, spec in self.cfg.node_pools.items():
            for _ in range(spec.nodes):
                self._add_node(pool, spec, ready_in=0.0)
        self.models: dict[str, ModelService] = {}
        for name, m in self.cfg.models.items():
            if m.pdb_min_available:
                self.cluster.pdb_min[f"model-{name}"] = m.pdb_min_available
            svc = ModelService(env, name, m, sc.calibration.devices[m.device],
                               self._rng(f"model/{name}"), level, self._model_pod,
                               self._delete_model_pod)  # fmt: skip
            self.models[name] = svc
            svc.reconcile()
        self.batch = BatchRunner(self, self.cfg, self._rng)
        self._warm = True  # the run starts on a warm platform: initial pods start at once
        self._schedule_now()
        self._warm = False
        if self.cfg.autoscaler.enabled:
            env.process(self._autoscaler())
        if self.cfg.prescaler.enabled:
            env.process(self._prescaler())

    def _rng(self, name: str) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(stream_seed(self.seed, f"platform/{name}")))

    # ------------------------------------------------------------------ nodes

    def _add_node(self, pool: str, spec: NodePoolSpec, ready_in: float) -> Node:
        s = spec.sharing
        node = Node(f"{pool}-{next(self._ids)}", pool, spec.cpu, spec.memory_gib,
                    slots_of(s.mode, s.replicas, s.mig_profiles, spec.gpus), spec.spot,
                    float(self.env.now))  # fmt: skip
        self.cluster.nodes.append(node)
        self.all_nodes.append(node)
        if ready_in <= 0:
            node.state = "ready"
        else:
            self.env.process(self._provision(node, ready_in))
        if spec.spot:
            t = next_interruption(self.spot_rng, spec.interruptions_per_hour)
            if math.isfinite(t):
                self.env.process(self._spot(node, spec, t))
        return node

    def _provision(self, node: Node, delay: float) -> Generator[Any, Any, None]:
        yield self.env.timeout(delay)
        if node.state == "provisioning":
            node.state = "ready"
            self.kick()

    def _remove_node(self, node: Node) -> None:
        for p in list(node.pods):
            self.cluster.evict(p, "node-gone", 0.0)
            self.cluster.release(p)
        node.state = "gone"
        node.removed = float(self.env.now)
        self.cluster.nodes.remove(node)
        self.scale_down.forget(node.name)
        self.kick()

    def _drain(self, node: Node, grace: float) -> None:
        node.state = "cordoned"
        for p in list(node.pods):
            self.cluster.evict(p, "drained", grace)

    def _spot(self, node: Node, spec: NodePoolSpec, t: float) -> Generator[Any, Any, None]:
        yield self.env.timeout(t)
        if node.state == "gone":
            return
        self.interruptions += 1  # the notice: cordon and drain (AWS Node Termination Handler)
        node.notice = float(self.env.now)
        self._drain(node, min(self.cfg.termination_grace_s, spec.notice_s))
        self.kick()
        yield self.env.timeout(spec.notice_s)
        if node.state != "gone":
            self._remove_node(node)

    # ------------------------------------------------------------------ pods

    def _model_pod(self, svc: ModelService) -> Pod:
        m = svc.spec
        pc = self.cfg.priority_classes[m.priority_class]
        pdb = f"model-{svc.name}" if m.pdb_min_available else None
        pod = Pod(f"{svc.name}-{next(self._ids)}", "model", m.tenant, m.priority_class, pc.value,
                  pc.preemption_policy, m.cpu, m.memory_gib, svc.gpu_request,
                  frozenset({m.node_pool}), float(self.env.now), pdb=pdb)
        pod.on_bound = lambda p: svc.started(p, 0.0 if self._warm else self._startup(svc))
        pod.on_evicted = lambda p, why: self._model_evicted(svc, p, why)
        self.cluster.submit(pod)
        self.kick()
        return pod

    def _startup(self, svc: ModelService) -> float:
        """Bound -> Ready: container start, model load (lognormal), readiness probe period."""
        st = svc.dev.startup
        load = st.model_load_s
        if st.model_load_cv > 0:
            sig = math.sqrt(math.log1p(st.model_load_cv**2))
            load *= float(svc.rng.lognormal(-0.5 * sig * sig, sig))
        t = st.container_start_s + load
        if t <= st.readiness_initial_delay_s:
            return st.readiness_initial_delay_s
        k = math.ceil((t - st.readiness_initial_delay_s) / st.readiness_period_s)
        return st.readiness_initial_delay_s + k * st.readiness_period_s

    def _delete_model_pod(self, pod: Pod) -> None:
        self.cluster.evict(pod, "scaled-down", self.cfg.termination_grace_s)

    def _model_evicted(self, svc: ModelService, pod: Pod, why: str) -> None:
        svc.gone(pod)
        if why != "scaled-down":
            svc.reconcile()  # the ReplicaSet replaces a deleted pod

    def _terminate(self, pod: Pod, grace: float) -> None:
        self.env.process(self._terminating(pod, grace))

    def _terminating(self, pod: Pod, grace: float) -> Generator[Any, Any, None]:
        if grace > 0:
            yield self.env.timeout(grace)
        if pod.state == "terminating":
            self.cluster.release(pod)
            self.kick()

    def cluster_step_pods(self) -> list[Pod]:
        """Every live step pod (pending or running), in creation order."""
        live = [p for p in self.cluster.pending if p.kind == "step"]
        for n in self.cluster.nodes:
            live += [p for p in n.pods if p.kind == "step" and p.state == "running"]
        return sorted(live, key=lambda p: p.created)

    # ------------------------------------------------------------------ outside control

    def state(self) -> dict[str, float]:
        """What an outside controller (an env preset, a script) sees of the platform now.

        Gauges (nodes by state, pending pods, replicas, queues, waiting work, quota in use,
        held queues) and cumulative counters (a model's ``arrived``, ``answered``,
        ``within_slo``, ``rejected`` requests and ``busy_s``; a tenant's completed workflows;
        ``cost``: node money so far, as in the summary): a controller takes the differences
        of the counters over its own step."""
        now = float(self.env.now)
        out: dict[str, float] = {}
        cost = 0.0
        for pool in self.cfg.node_pools:
            nodes = [n for n in self.cluster.nodes if n.pool == pool]
            out[f"pool_{pool}_nodes_ready"] = float(sum(n.state == "ready" for n in nodes))
            out[f"pool_{pool}_nodes_provisioning"] = float(
                sum(n.state == "provisioning" for n in nodes))
            out[f"pool_{pool}_nodes_cordoned"] = float(sum(n.state == "cordoned" for n in nodes))
            node_s = sum((n.removed if n.removed is not None else now) - n.created
                         for n in self.all_nodes if n.pool == pool)  # fmt: skip
            cost += node_s / 3600.0 * node_hour_price(self, pool)
        out["pending_pods"] = float(len(self.cluster.pending))
        for name, svc in self.models.items():
            out[f"model_{name}_desired"] = float(svc.desired)
            out[f"model_{name}_gpu"] = float(svc.gpu_request)
            out[f"model_{name}_ready"] = float(len(svc.ready))
            out[f"model_{name}_queue"] = float(len(svc.queue))
            out[f"model_{name}_arrived"] = float(svc.arrived)
            out[f"model_{name}_answered"] = float(len(svc.latencies))
            out[f"model_{name}_within_slo"] = float(svc.within_slo())
            out[f"model_{name}_rejected"] = float(svc.rejected)
            out[f"model_{name}_busy_s"] = svc.busy_s
        for t in self.cfg.tenants:
            out[f"tenant_{t}_waiting_workflows"] = float(len(self.batch.queues[t].waiting))
            out[f"tenant_{t}_waiting_steps"] = float(
                sum(a.run.tenant == t for a in self.batch.waiting))
            out[f"tenant_{t}_used_cpu"], out[f"tenant_{t}_used_gpu"] = self.batch.used[t]
            out[f"tenant_{t}_completed"] = float(self.batch.completed[t])
            out[f"tenant_{t}_held"] = float(t in self.batch.held)
        out["cost"] = cost
        return out

    def control(self, replicas: dict[str, int] | None = None,
                pool_floor: dict[str, int] | None = None,
                hold: dict[str, bool] | None = None,
                gpu: dict[str, int] | None = None) -> dict[str, int]:  # fmt: skip
        """Set models' replicas (clamped to their bounds; an HPA keeps scaling a model that
        has one), node-pool floors (nodes are added now, up to max_nodes, and CA keeps at
        least that many: pre-scaling), which tenants' queues are held (no new step
        workloads admitted: Kueue `stopPolicy: Hold`) and models' GPU slots per pod (a
        rolling update, `ModelService.set_gpu_request`). Returns what was set."""
        done: dict[str, int] = {}
        for name, n in (gpu or {}).items():
            svc = self.models[name]
            if svc.spec.gpu == 0 or n < 1:
                raise ValueError(f"gpu: model '{name}' takes no GPU, or {n} < 1 slot")
            svc.set_gpu_request(n)
            done[f"gpu_{name}"] = n
        for name, n in (replicas or {}).items():
            svc = self.models[name]
            svc.desired = min(max(n, svc.spec.min_replicas), svc.spec.max_replicas)
            svc.reconcile()
            done[f"model_{name}"] = svc.desired
        for pool, n in (pool_floor or {}).items():
            spec = self.cfg.node_pools[pool]
            floor = min(max(n, 0), spec.max_nodes)
            self.pool_floor[pool] = floor
            live = sum(1 for x in self.cluster.nodes if x.pool == pool)
            for _ in range(floor - live):
                self._add_node(pool, spec, ready_in=spec.provisioning_s)
            done[f"pool_{pool}"] = floor
        for t, on in (hold or {}).items():
            if t not in self.cfg.tenants:
                raise KeyError(f"hold: '{t}' is not a tenant")
            if on:
                self.batch.held.add(t)
            else:
                self.batch.held.discard(t)
            done[f"hold_{t}"] = int(on)
        self.kick()
        return done

    # ------------------------------------------------------------------ scheduling

    def kick(self) -> None:
        """Ask for a scheduling pass at the current time (several asks, one pass)."""
        if not self._kicked:
            self._kicked = True
            self.env.process(self._pass())

    def _pass(self) -> Generator[Any, Any, None]:
        yield self.env.timeout(0)
        self._kicked = False
        self._schedule_now()

    def _schedule_now(self) -> None:
        self.batch.admit_pass()
        self.cluster.schedule(self.cfg.termination_grace_s)

    def _prescaler(self) -> Generator[Any, Any, None]:
        """Every period, each model's floor follows the load `horizon_s` ahead
        (`kisim.core.platform.PrescalerSpec`); CA adds the nodes its new pods need."""
        ps = self.cfg.prescaler
        while True:
            yield self.env.timeout(ps.period_s)
            ahead = self.level(float(self.env.now) + ps.horizon_s)
            for svc in self.models.values():
                svc.prescale(ahead, ps.target_util)

    # ------------------------------------------------------------------ Cluster Autoscaler

    def _autoscaler(self) -> Generator[Any, Any, None]:
        a = self.cfg.autoscaler
        while True:
            yield self.env.timeout(a.scan_interval_s)
            self._scale_up()
            self._scale_down()

    def _requests(self, pods: list[Pod]) -> list[ca.Request]:
        return [ca.Request(p.cpu, p.memory_gib, p.gpu, p.pools) for p in pods]

    def _scale_up(self) -> None:
        pending = [p for p in self.cluster.unschedulable
                   if p.state == "pending" and p.nominated is None]  # fmt: skip
        if not pending:
            return
        # pods that fit on ready nodes (the scheduler has not run yet) or on upcoming ones are
        # no reason to scale up (CA's filterOutSchedulable; upcoming nodes count as capacity)
        left: list[Pod] = []
        room = {n: [n.cpu - n.cpu_used, n.memory_gib - n.mem_used, len(n.free_slots())]
                for n in self.cluster.nodes if n.state in ("ready", "provisioning")}  # fmt: skip
        for p in pending:
            for n, r in room.items():
                if n.pool in p.pools and r[0] >= p.cpu and r[1] >= p.memory_gib and r[2] >= p.gpu:
                    r[0] -= p.cpu
                    r[1] -= p.memory_gib
                    r[2] -= p.gpu
                    break
            else:
                left.append(p)
        if not left:
            return
        groups: dict[str, ca.Group] = {}
        for name, spec in self.cfg.node_pools.items():
            live = sum(1 for n in self.cluster.nodes if n.pool == name)
            s = spec.sharing
            slots = len(slots_of(s.mode, s.replicas, s.mig_profiles, spec.gpus))
            groups[name] = ca.Group(name, spec.cpu, spec.memory_gib, slots,
                                    spec.max_nodes - live, spec.expander_priority)  # fmt: skip
        reqs = self._requests(left)
        opts = [o for g in groups.values() if (o := ca.estimate(g, reqs)) is not None]
        best = ca.expand(opts, self.cfg.autoscaler.expander, groups, self.ca_rng)
        if best is None:
            return
        spec = self.cfg.node_pools[best.group]
        for _ in range(best.nodes):
            self._add_node(best.group, spec, ready_in=spec.provisioning_s)
        self.scale_ups += best.nodes
        self.scale_down.last_scale_up = float(self.env.now)

    def _scale_down(self) -> None:
        now = float(self.env.now)
        removed = False
        for node in list(self.cluster.nodes):
            if node.state != "ready":
                continue
            spec = self.cfg.node_pools[node.pool]
            live = sum(1 for n in self.cluster.nodes if n.pool == node.pool and n.state != "gone")
            gpu_req = sum(p.gpu for p in node.pods)
            util = ca.utilisation(node.cpu_used, node.cpu, node.mem_used, node.memory_gib,
                                  gpu_req, len(node.slots))  # fmt: skip
            movable = live > max(spec.min_nodes, self.pool_floor.get(node.pool, 0)) \
                and self._movable(node)
            if self.scale_down.observe(now, node.name, util, movable) and not removed:
                self.scale_downs += 1
                if node.pods:
                    removed = True  # one non-empty node per loop, as CA drains them
                    self._drain(node, self.cfg.termination_grace_s)
                    self.env.process(self._delete_after(node, self.cfg.termination_grace_s))
                else:
                    self._remove_node(node)

    def _delete_after(self, node: Node, grace: float) -> Generator[Any, Any, None]:
        yield self.env.timeout(grace)
        if node.state != "gone":
            self._remove_node(node)

    def _movable(self, node: Node) -> bool:
        """Every pod of `node` fits on the other ready nodes (a greedy simulation)."""
        free = {n: [n.cpu - n.cpu_used, n.memory_gib - n.mem_used, len(n.free_slots())]
                for n in self.cluster.nodes if n is not node and n.state == "ready"}  # fmt: skip
        for p in node.pods:
            for n, r in free.items():
                if n.pool in p.pools and r[0] >= p.cpu and r[1] >= p.memory_gib and r[2] >= p.gpu:
                    r[0] -= p.cpu
                    r[1] -= p.memory_gib
                    r[2] -= p.gpu
                    break
            else:
                return False
        return True

"""The request-level data plane: requests live in arrays, not in SimPy processes.

SimPy owns time and the control plane (pods, controllers, scrapes, windows). Before
every SimPy event the clock calls `run_until(t)`, and the compiled kernel
(`twin.kernel`) processes the request events up to `t`: arrivals, Service routing
over ready endpoints, Triton's dynamic batcher, batch completions and closed-loop
users' next requests. Control events therefore see the data plane at their time.

Latency of a request = queue wait + batch execution + the device's per-request
overhead (HTTP, (de)serialisation), modelled as a pure delay on the response path;
a request is counted in the window in which its execution ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numba import njit

from kisim.core.config import DeviceCalibration, PoolConfig, Scenario
from kisim.core.routing import RouteTable
from kisim.core.sketch import N_BUCKETS, LatencySketch, resolve_latency_stats
from twin import kernel as K
from twin.batcher import BatchRule
from twin.draws import multiplier, stream_seed
from twin.replica import GPU, Replica

BLOCK = 1 << 13


class WindowCounts:
    """What the data plane accumulated since the last cut: counts, and the completed
    requests' latencies and queue waits (s) — every one (exact mode) or a sketch of them
    (`metrics.latency_stats: sketch`); `slow` counts those over the SLO, exactly."""

    __slots__ = ("offered", "served", "errors", "lats", "waits", "batches", "items", "slow")

    def __init__(self, offered: int, served: int, errors: int,
                 lats: np.ndarray | LatencySketch, waits: np.ndarray | LatencySketch,
                 batches: int, items: int, slow: int) -> None:  # fmt: skip
        self.offered, self.served, self.errors = offered, served, errors
        self.lats, self.waits, self.batches, self.items = lats, waits, batches, items
        self.slow = slow


class DataPlane:
    """Array state of every replica, queue, in-flight batch and pending request event."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        cal = scenario.calibration
        self.maxb = max(BatchRule(p.batching).max_batch for p in scenario.pools.values())
        self.max_inst = max(p.instances for p in scenario.pools.values())
        self.sketch = resolve_latency_stats(scenario) == "sketch"
        r, q, h, nb = 16, 256, 1024, 64
        oc = 1 if self.sketch else 8192  # per-request outputs (exact mode)
        self.ri = np.zeros((r, K.NRI), np.int64)
        self.rf = np.zeros((r, K.NRF), np.float64)
        self.pref = np.zeros((r, 16), np.int64)
        self.curve = np.zeros((r, self.maxb + 1), np.float64)
        self.cexp = np.zeros((r, self.maxb + 1), np.float64)  # core-scaling exponent per size
        self.qt = np.zeros((r, q), np.float64)
        self.qu = np.zeros((r, q), np.int64)
        n_gpus = sum(n.count * n.gpus for n in scenario.cluster.nodes)
        n_nodes = sum(n.count for n in scenario.cluster.nodes)
        self.n_gpus = n_gpus
        # busy executions per GPU, then per node (CPU replicas: `host_sharing_penalty`)
        self.gbusy = np.zeros(n_gpus + n_nodes, np.int64)
        self.gf = np.zeros((max(n_gpus, 1), 2), np.float64)  # busy since, busy seconds
        self.bi = np.zeros((nb, 3), np.int64)
        self.bi[:, 2] = np.arange(1, nb + 1)
        self.bi[-1, 2] = -1
        self.bf = np.zeros(nb, np.float64)
        self.bt = np.zeros((nb, self.maxb), np.float64)
        self.bu = np.zeros((nb, self.maxb), np.int64)
        self.ht = np.zeros(h, np.float64)
        self.hs = np.zeros(h, np.int64)
        self.hk = np.zeros(h, np.int64)
        self.hx = np.zeros(h, np.int64)
        self.gi = np.zeros(K.NGI, np.int64)
        self.gi[K.RR_MODE] = 1 if scenario.routing.mode == "round_robin" else 0
        self.gfl = np.zeros(K.NGF, np.float64)
        self.gfl[K.SLO_S] = scenario.slo_ms * 1e-3
        self.gfl[K.OPEN_T] = math.inf  # no open-loop arrival pending
        self.gi[K.SKETCH] = 1 if self.sketch else 0
        self.sk = np.zeros((2, N_BUCKETS), np.int64)  # the window's latency, wait buckets
        # pools by slot (`Scenario.pool_names`: GPU pools first) and routing groups
        self.pool_index = {p: i for i, p in enumerate(scenario.pool_names)}
        self.routes = RouteTable(scenario)
        ngroups = len(self.routes.groups)
        self.group_of = {p: g for g, members in enumerate(self.routes.groups) for p in members}
        self.ready = np.zeros((ngroups, r), np.int64)  # ready slots per routing group
        self.nready = np.zeros(ngroups, np.int64)
        self.rr = np.full(ngroups, -1, np.int64)  # round-robin position per group
        self.gw = np.zeros(ngroups, np.float64)  # weight per group (< 0: by endpoint count)
        self.ready_lists: list[list[int]] = [[] for _ in range(ngroups)]
        self.alive = np.zeros(256, np.bool_)
        self.n_users = 0
        self.user_stack: list[int] = []
        self.olat = np.zeros(oc, np.float64)
        self.owait = np.zeros(oc, np.float64)
        self.drained = np.zeros((r, 2), np.float64)
        self._flushed: list[tuple[np.ndarray, np.ndarray]] = []
        self._on_drained: dict[int, Callable[[Replica, float], None]] = {}
        self.replicas: list[Replica] = []
        self.n_slots = 0
        # random streams: numbered as in twin.kernel, each seeded by its name (a pool's are
        # "svc/<pool>" and "ovh/<pool>"), refilled in order (deterministic)
        nstreams = K.n_streams(len(self.pool_index))
        self.rnd = np.zeros((nstreams, BLOCK), np.float64)
        self.ridx = np.full(nstreams, BLOCK, np.int64)
        lo, hi = scenario.traffic.wait_time_s
        samplers = {
            K.S_ROUTE: ("route", lambda g, n: g.random(n)),
            K.S_THINK: ("think", lambda g, n: g.uniform(lo, hi, n)),
            K.S_OPEN: ("open", (lambda g, n: g.exponential(1.0, n))
                       if scenario.traffic.arrival == "exponential" else (lambda g, n: np.ones(n))),
        }  # fmt: skip
        for pool, i in self.pool_index.items():
            dev = cal.devices[scenario.pools[pool].device]
            samplers[K.stream_index(i, False)] = (f"svc/{pool}", multiplier(dev.service.noise))
            samplers[K.stream_index(i, True)] = (f"ovh/{pool}", multiplier(dev.overhead_noise))
        self._gens = {
            s: (np.random.Generator(np.random.PCG64(stream_seed(seed, name))), f)
            for s, (name, f) in sorted(samplers.items())
        }
        self.set_placement(scenario.routing.placement)
        self.margins = (2 * self.maxb + self.max_inst + 8, 3 * self.maxb + self.max_inst + 8,
                        self.maxb + 1)  # fmt: skip

    # ------------------------------------------------------------------ control-plane API

    @property
    def now(self) -> float:
        return float(self.gfl[K.NOW])

    def set_placement(self, placement: str) -> None:
        self.placement = placement
        self.gw[:] = self.routes.weights(placement)

    def add_replica(self, name: str, pool: str, cfg: PoolConfig, dev: DeviceCalibration,
                    gpu: GPU | None, node: int = -1) -> Replica:  # fmt: skip
        """A replica whose server is up (not yet an endpoint: see `add_ready`); `node` is the
        index of its node (CPU replicas on one node share its cores: `host_sharing_penalty`)."""
        s = self.n_slots
        if s >= self.ri.shape[0]:
            self._grow_replicas()
        self.n_slots += 1
        rule = BatchRule(cfg.batching)
        ri, rf = self.ri[s], self.rf[s]
        p = self.pool_index[pool]
        ri[K.POOL], ri[K.GROUP] = p, self.group_of[pool]
        ri[K.SSVC], ri[K.SOVH] = K.stream_index(p, False), K.stream_index(p, True)
        ri[K.INST] = ri[K.FREE] = cfg.instances
        ri[K.MAXB], ri[K.CAP], ri[K.MAXQ] = rule.max_batch, rule.cap, rule.max_queue
        ri[K.GPU] = gpu.index if gpu is not None else -1
        ri[K.NPREF] = len(rule.preferred_desc)
        self.pref[s, : len(rule.preferred_desc)] = rule.preferred_desc
        rf[K.DELAY], rf[K.PEN] = rule.delay_s, dev.sharing_penalty
        rf[K.CORES], rf[K.REF] = cfg.resources.cpu, dev.reference_cores
        rf[K.CPUREQ], rf[K.OVH] = dev.cpu_per_request_ms * 1e-3, dev.overhead_ms * 1e-3
        rf[K.OVHB] = dev.overhead_busy_factor
        rf[K.OVHP] = dev.overhead_per_batch_position_ms * 1e-3
        rf[K.IDLE], rf[K.LAST] = dev.idle_slowdown, -math.inf  # never ran: fully idle
        rf[K.ITAU] = 1e3 / dev.idle_tau_ms
        shares = gpu is None and node >= 0 and dev.kind == "cpu" and dev.host_sharing_penalty > 0
        ri[K.HOST] = self.n_gpus + node if shares else -1  # -1: nothing to count (hot path)
        rf[K.HPEN] = dev.host_sharing_penalty if shares else 0.0
        merge = dev.batch_merge_ms  # per request merged by the batcher (0: the curve alone)
        self.curve[s, 1 : rule.max_batch + 1] = [(dev.service.time_ms(b) + merge * (b - 1)) * 1e-3
                                                 for b in range(1, rule.max_batch + 1)]  # fmt: skip
        self.cexp[s, 1 : rule.max_batch + 1] = [dev.core_exponent(b)
                                                for b in range(1, rule.max_batch + 1)]  # fmt: skip
        busy_batches = int(self.ri[: self.n_slots, K.INST].sum())
        if busy_batches + 1 > self.bi.shape[0]:
            self._grow_batches(2 * busy_batches)
        rep = Replica(self, s, name, pool, gpu, dev.memory_base_gib, dev.memory_per_item_gib)
        self.replicas.append(rep)
        return rep

    def add_ready(self, rep: Replica) -> None:
        """The pod passed its readiness probe: it becomes a Service endpoint."""
        self.ri[rep.slot, K.STATE] = K.READY
        self.ready_lists[self.group_of[rep.pool]].append(rep.slot)
        self._sync_ready()

    def start_drain(self, rep: Replica, on_drained: Callable[[Replica, float], None]) -> None:
        """Remove the endpoint; queued and executing requests finish, then `on_drained`."""
        lst = self.ready_lists[self.group_of[rep.pool]]
        if rep.slot in lst:
            lst.remove(rep.slot)
            self._sync_ready()
        self.ri[rep.slot, K.STATE] = K.DRAINING
        if rep.idle:
            on_drained(rep, self.now)
        else:
            self._on_drained[rep.slot] = on_drained

    def drop_queue(self, rep: Replica) -> int:
        """Grace period over: queued requests fail (executing batches still complete)."""
        s, qcap = rep.slot, self.qt.shape[1]
        n = int(self.ri[s, K.QLEN])
        self._ensure_heap(n + 1)
        self._ensure_draws(n + 1)
        for j in range(n):
            u = int(self.qu[s, (self.ri[s, K.QHEAD] + j) % qcap])
            K._fail(u, self.now, self.alive, self.ht, self.hs, self.hk, self.hx, self.gi,
                    self.rnd, self.ridx)  # fmt: skip
        self.ri[s, K.QLEN] = 0
        if rep.idle and s in self._on_drained:
            self._on_drained.pop(s)(rep, self.now)
        return n

    def set_users(
        self, n: int, now: float, spread_s: float, spawn_rate: float | None = None
    ) -> None:
        """Closed loop: start or stop Locust users. New users start uniformly within
        `spread_s`, or, with a `spawn_rate` (users/s), as Locust's dispatcher starts them:
        groups of max(1, floor(rate)) users, one group every group/rate s from `now`, each
        user's first request at its start (Locust waits after a task, not before)."""
        while len(self.user_stack) > n:
            self.alive[self.user_stack.pop()] = False  # Locust stops the newest users first
        new = n - len(self.user_stack)
        if new <= 0:
            return
        if self.n_users + new > self.alive.shape[0]:
            more = np.zeros(max(self.n_users + new, 256), np.bool_)
            self.alive = np.concatenate([self.alive, more])
        self._ensure_heap(new)
        self._ensure_draws(new)
        users = np.arange(self.n_users, self.n_users + new, dtype=np.int64)
        self.alive[users] = True
        self.user_stack.extend(users.tolist())
        self.n_users += new
        if spawn_rate:
            group = max(1, math.floor(spawn_rate))
            starts = now + (np.arange(new) // group) * (group / spawn_rate)
            K.start_users_at(self.ht, self.hs, self.hk, self.hx, self.gi, users, starts)
            return
        K.start_users(self.ht, self.hs, self.hk, self.hx, self.gi, self.rnd, self.ridx, users,
                      now, spread_s)  # fmt: skip

    def set_open_rate(self, rate: float, now: float) -> None:
        """Open loop: Poisson (or deterministic) arrivals at `rate` req/s from now on."""
        if rate == self.gfl[K.OPEN_RATE]:
            return
        self.gfl[K.OPEN_RATE] = rate
        self.gi[K.OPEN_GEN] += 1
        self.gfl[K.OPEN_T] = math.inf  # the pending arrival, if any, is superseded
        if rate > 0:
            if self.ridx[K.S_OPEN] >= self.rnd.shape[1]:  # only this stream is read here: the
                self._ensure_draws(1)  # others refill in the kernel's turn (same values)
            gap = K._draw(self.rnd, self.ridx, K.S_OPEN) / rate
            self.gfl[K.OPEN_T] = now + gap  # numbered as a heap push would be
            self.gi[K.OPEN_SEQ] = self.gi[K.SEQ]
            self.gi[K.SEQ] += 1

    def gpu_busy_seconds(self, gpu: GPU, now: float) -> float:
        i = gpu.index
        return float(self.gf[i, 1] + (now - self.gf[i, 0] if self.gbusy[i] else 0.0))

    def queue_length(self) -> int:
        """Requests queued at endpoints and draining replicas (one compiled call)."""
        return int(_queued(self.ri, self.n_slots))

    def cut(self, fresh: bool = True) -> WindowCounts:
        """Counts and latency records (arrays or sketches) since the last cut. With
        `fresh` False, exact-mode arrays may be views of the data plane's output buffers,
        valid until it runs again (`TwinBackend` copies them in its compiled window cut)."""
        gi, gfl = self.gi, self.gfl
        counts = (int(gi[K.W_OFFERED]), int(gi[K.W_SERVED]), int(gi[K.W_ERRORS]))
        if self.sketch:
            lats: np.ndarray | LatencySketch = LatencySketch(self.sk[0].copy(),
                                                             float(gfl[K.W_LATSUM]))
            waits: np.ndarray | LatencySketch = LatencySketch(self.sk[1].copy(),
                                                              float(gfl[K.W_WAITSUM]))
            self.sk[:] = 0
            gfl[K.W_LATSUM] = gfl[K.W_WAITSUM] = 0.0
        else:
            n = int(gi[K.NOUT])
            gi[K.NOUT] = 0
            if self._flushed:
                parts = self._flushed + [(self.olat[:n], self.owait[:n])]
                self._flushed = []
                lats = np.concatenate([p[0] for p in parts])
                waits = np.concatenate([p[1] for p in parts])
            elif fresh:
                lats, waits = self.olat[:n].copy(), self.owait[:n].copy()
            else:
                lats, waits = self.olat[:n], self.owait[:n]
        w = WindowCounts(*counts, lats, waits, int(gi[K.W_BATCHES]), int(gi[K.W_ITEMS]),
                         int(gi[K.W_SLOW]))  # fmt: skip
        gi[K.W_OFFERED : K.W_ITEMS + 1] = 0
        gi[K.W_SLOW] = 0
        return w

    # ------------------------------------------------------------------ event loop

    def run_until(self, t_end: float) -> None:
        mh, md, mo = self.margins
        while True:
            code = K.run_until(
                t_end, self.ri, self.rf, self.pref, self.curve, self.cexp, self.qt, self.qu,
                self.gbusy, self.gf, self.bi, self.bf, self.bt, self.bu, self.ht, self.hs,
                self.hk, self.hx,
                self.gi, self.gfl, self.rnd, self.ridx, self.ready, self.nready, self.rr,
                self.gw, self.alive, self.olat, self.owait, self.sk, self.drained, mh, md, mo,
            )  # fmt: skip
            self._notify_drained()
            if code == K.FINISHED:
                return
            self._make_space()

    def _notify_drained(self) -> None:
        for k in range(int(self.gi[K.NDRAINED])):
            slot, t = int(self.drained[k, 0]), float(self.drained[k, 1])
            cb = self._on_drained.pop(slot, None)
            if cb is not None:
                cb(self.replicas[slot], t)
        self.gi[K.NDRAINED] = 0

    def _make_space(self) -> None:
        mh, md, mo = self.margins
        self._ensure_heap(mh)
        self._ensure_draws(md)
        if not self.sketch and self.gi[K.NOUT] + mo > self.olat.shape[0]:
            n = int(self.gi[K.NOUT])
            self._flushed.append((self.olat[:n].copy(), self.owait[:n].copy()))
            self.gi[K.NOUT] = 0
        if self.gi[K.QMAX] + 1 >= self.qt.shape[1]:
            self._grow_queues()
        if self.gi[K.BFREE] < 0:
            self._grow_batches(2 * self.bi.shape[0])

    def _ensure_heap(self, room: int) -> None:
        if self.gi[K.HN] + room > self.ht.shape[0]:
            n = max(2 * self.ht.shape[0], int(self.gi[K.HN]) + room)
            for name in ("ht", "hs", "hk", "hx"):
                a = getattr(self, name)
                b = np.zeros(n, a.dtype)
                b[: a.shape[0]] = a
                setattr(self, name, b)

    def _ensure_draws(self, room: int) -> None:
        """At least `room` unread draws in every stream. A stream's values do not depend on
        how they are cut into blocks, so widening the buffer (when one call needs more than
        a block holds, e.g. 100k users starting at once) changes no number."""
        filled = self.rnd.shape[1]  # draws [ridx, filled) are unread
        if room > filled:
            wide = np.zeros((self.rnd.shape[0], 1 << (room - 1).bit_length()), np.float64)
            wide[:, :filled] = self.rnd
            self.rnd = wide
        width = self.rnd.shape[1]
        for s in range(self.rnd.shape[0]):
            i = int(self.ridx[s])
            if i + room > width:
                rest = max(filled - i, 0)
                self.rnd[s, :rest] = self.rnd[s, i:filled]
                g, f = self._gens[s]
                self.rnd[s, rest:] = f(g, width - rest)
                self.ridx[s] = 0

    def _grow_queues(self) -> None:
        old_t, old_u, cap = self.qt, self.qu, self.qt.shape[1]
        self.qt = np.zeros((self.ri.shape[0], 2 * cap), np.float64)
        self.qu = np.zeros((self.ri.shape[0], 2 * cap), np.int64)
        for s in range(self.n_slots):
            idx = (self.ri[s, K.QHEAD] + np.arange(self.ri[s, K.QLEN])) % cap
            self.qt[s, : len(idx)] = old_t[s, idx]
            self.qu[s, : len(idx)] = old_u[s, idx]
            self.ri[s, K.QHEAD] = 0

    def _grow_batches(self, n: int) -> None:
        old = self.bi.shape[0]
        if n <= old:
            return
        self.bi = np.concatenate([self.bi, np.zeros((n - old, 3), np.int64)])
        self.bi[old:, 2] = np.arange(old + 1, n + 1)
        self.bi[n - 1, 2] = self.gi[K.BFREE]  # chain the old free list behind the new slots
        self.gi[K.BFREE] = old
        self.bf = np.concatenate([self.bf, np.zeros(n - old)])
        self.bt = np.concatenate([self.bt, np.zeros((n - old, self.maxb))])
        self.bu = np.concatenate([self.bu, np.zeros((n - old, self.maxb), np.int64)])

    def _grow_replicas(self) -> None:
        n = 2 * self.ri.shape[0]

        def grow(a: np.ndarray, axis: int = 0) -> np.ndarray:
            shape = list(a.shape)
            shape[axis] = n
            b = np.zeros(shape, a.dtype)
            b[tuple(slice(0, s) for s in a.shape)] = a
            return b

        self.ri, self.rf, self.pref = grow(self.ri), grow(self.rf), grow(self.pref)
        self.curve, self.cexp = grow(self.curve), grow(self.cexp)
        self.qt, self.qu, self.drained = grow(self.qt), grow(self.qu), grow(self.drained)
        self.ready = grow(self.ready, axis=1)

    def _sync_ready(self) -> None:
        for g, lst in enumerate(self.ready_lists):
            self.ready[g, : len(lst)] = lst
            self.nready[g] = len(lst)


@njit(cache=True)
def _queued(ri, n_slots):  # type: ignore[no-untyped-def]
    """Queued requests of the replicas that hold a queue (ready or draining)."""
    total = 0
    for s in range(n_slots):
        st = ri[s, K.STATE]
        if st == K.READY or st == K.DRAINING:
            total += ri[s, K.QLEN]
    return total

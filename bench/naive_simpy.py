"""The speed reference: the twin's request queueing written the obvious SimPy way.

One SimPy process (a generator) per request and one per closed-loop (Locust) user;
queues are `deque`s of request objects, a request waits on its own `simpy.Event`,
and batch executions and batcher timers are plain `env.timeout` events with a
callback (processes for those would only add events). It is deliberately naive
about speed but not about semantics: it models the same queueing as `twin.kernel`:

* Locust users: the number of running users follows the scenario's pattern at every
  `shape_tick_s` (new users start spread uniformly over the tick, the newest stop
  first); a user sends a request, waits for the answer (including the response
  overhead), thinks `between(wait_time_s)` and repeats. Open loop: Poisson (or
  deterministic) arrivals at the pattern's rate.
* Routing (Kubernetes Service): the GPU pool gets `routing.gpu_share[placement]` of
  the requests (None: its share of the ready endpoints), then a uniformly random
  endpoint of the pool (kube-proxy iptables), or round robin per pool (IPVS rr).
* Each replica is a Triton server: a FIFO queue, `instances` concurrent
  executions, and the dynamic batcher's decision (`twin.batcher.BatchRule.decide`,
  imported) taken whenever an instance is free: on arrival, on completion, and when
  the oldest queued request has waited `max_queue_delay`. A full queue
  (`max_queue_size`) rejects; errors cost the user 1 ms before it thinks again.
* A batch of b takes `service.time_ms(b)` x noise; on a GPU x (1 + sharing_penalty x
  executions already running on that GPU); on CPU x (reference_cores / effective
  cores)^core_scaling, effective cores = pod cores / executions running including
  this one. A request's latency = queue wait + execution + overhead_ms x noise (a
  pure delay on the response path); it is counted when its execution ends.

What it leaves out (the benchmark scenario does not need it): pod lifecycle,
scale-up/down, draining, HPA, Prometheus scrapes and windows. Replicas are static:
the scenario's initial `replicas` per pool, placed by the twin's own scheduler
stand-in (`twin.scheduler.Scheduler`, so GPU sharing is the same); pods that do
not fit stay out, as they would stay Pending. Random numbers come from Python's
`random` (same distributions as the twin, not the same draws).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import simpy

from kisim.core.config import DeviceCalibration, Dist, PoolConfig, Scenario
from kisim.core.patterns import make_pattern
from twin.batcher import BatchRule
from twin.scheduler import Scheduler

ERROR_LATENCY_S = 0.001  # as twin.kernel: a failed request answers after 1 ms


def noise_sampler(rng: random.Random, dist: Dist) -> Callable[[], float]:
    """Mean-one multiplier, as `twin.draws.multiplier` (deterministic, exponential, lognormal)."""
    if dist.kind == "deterministic" or (dist.kind == "lognormal" and dist.cv == 0):
        return lambda: 1.0
    if dist.kind == "exponential":
        return lambda: rng.expovariate(1.0)
    sigma = math.sqrt(math.log1p(dist.cv**2))
    mu = -0.5 * sigma * sigma
    return lambda: rng.lognormvariate(mu, sigma)


@dataclass
class NaiveResult:
    """What the run saw; `served` counts requests whose execution ended within the run."""

    duration_s: float
    offered: int = 0
    served: int = 0
    errors: int = 0
    batches: int = 0
    batch_items: int = 0
    latencies_s: list[float] = field(default_factory=list)
    waits_s: list[float] = field(default_factory=list)

    @property
    def throughput_rps(self) -> float:
        return self.served / self.duration_s

    @property
    def mean_ms(self) -> float:
        return 1e3 * sum(self.latencies_s) / len(self.latencies_s) if self.latencies_s else math.nan

    @property
    def mean_wait_ms(self) -> float:
        return 1e3 * sum(self.waits_s) / len(self.waits_s) if self.waits_s else math.nan

    @property
    def mean_batch_size(self) -> float:
        return self.batch_items / self.batches if self.batches else math.nan


class Request:
    __slots__ = ("arrived", "done", "started")

    def __init__(self, env: simpy.Environment, now: float) -> None:
        self.arrived = now
        self.started = now
        self.done = env.event()


class TritonServer:
    """One replica: queue, dynamic batcher, `instances` executions at a time."""

    def __init__(self, model: NaiveModel, pool: str, cfg: PoolConfig, dev: DeviceCalibration,
                 gpu: int | None) -> None:  # fmt: skip
        self.model, self.env, self.pool, self.gpu = model, model.env, pool, gpu
        self.rule = BatchRule(cfg.batching)
        self.instances = self.free = cfg.instances
        self.cores = cfg.resources.cpu
        self.dev = dev
        self.curve = [0.0] + [
            dev.service.time_ms(b) * 1e-3 for b in range(1, self.rule.max_batch + 1)
        ]
        self.overhead_s = dev.overhead_ms * 1e-3
        self.queue: deque[Request] = deque()
        self.timer_armed = False

    def submit(self, req: Request) -> bool:
        """Enqueue (False: the queue is full, Triton rejects)."""
        if self.rule.max_queue > 0 and len(self.queue) >= self.rule.max_queue:
            return False
        self.queue.append(req)
        self.dispatch()
        return True

    def dispatch(self) -> None:
        """Form and start batches while an instance is free (Triton's rate limiter)."""
        env, model = self.env, self.model
        while self.free > 0 and self.queue:
            b = self.rule.decide(len(self.queue), self.queue[0].arrived, env.now)
            if b == 0:
                if not self.timer_armed:  # wake up when the oldest has waited the delay
                    self.timer_armed = True
                    at = self.queue[0].arrived + self.rule.delay_s
                    env.timeout(at - env.now).callbacks.append(self._timer)
                return
            batch = [self.queue.popleft() for _ in range(b)]
            now = env.now
            for req in batch:
                req.started = now
            noise = model.svc_noise[self.pool]()
            if self.gpu is not None:  # slowed by the executions already running on this GPU
                busy = model.gpu_busy[self.gpu]
                st = self.curve[b] * (1.0 + self.dev.sharing_penalty * busy) * noise
                model.gpu_busy[self.gpu] = busy + 1
            else:  # the pod's cores are split over the running executions, this one included
                eff = self.cores / (self.instances - self.free + 1)
                st = (
                    self.curve[b]
                    * (self.dev.reference_cores / eff) ** self.dev.core_exponent(b)
                    * noise
                )
            self.free -= 1
            ev = env.timeout(st, batch)
            ev.callbacks.append(self._done)

    def _timer(self, _ev: simpy.Event) -> None:
        self.timer_armed = False
        self.dispatch()

    def _done(self, ev: simpy.Event) -> None:
        """A batch's execution ended: every request in it is answered, the instance is free."""
        batch: list[Request] = ev.value
        model, b = self.model, len(batch)
        if self.gpu is not None:
            model.gpu_busy[self.gpu] -= 1
        self.free += 1
        model.result.batches += 1
        model.result.batch_items += b
        for req in batch:
            req.done.succeed()
        if self.queue:
            self.dispatch()


class NaiveModel:
    """Static replicas of both pools behind one Service, driven by the scenario's traffic."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = sc = scenario
        self.seed = seed  # the pattern's own seed (e.g. `random`), as the twin's
        self.env = simpy.Environment()

        def rng(name: str) -> random.Random:
            return random.Random(f"naive/{seed}/{name}")

        self.r_route, self.r_think, self.r_open = rng("route"), rng("think"), rng("open")
        self.r_spread = rng("spread")
        cal = sc.calibration
        self.svc_noise = {p: noise_sampler(rng(f"svc/{p}"), cal.devices[c.device].service.noise)
                          for p, c in sc.pools.items()}  # fmt: skip
        self.ovh_noise = {p: noise_sampler(rng(f"ovh/{p}"), cal.devices[c.device].overhead_noise)
                          for p, c in sc.pools.items()}  # fmt: skip
        self.ready: dict[str, list[TritonServer]] = {"gpu": [], "cpu": []}
        sched = Scheduler(sc.cluster)
        self.gpu_busy: dict[int, int] = {}
        for pool, cfg in sc.pools.items():  # the twin's warm start: bound in creation order
            for _ in range(cfg.replicas):
                r = cfg.resources
                b = sched.bind(r.cpu, r.memory_gib, r.gpu)
                if b is None:
                    continue  # would stay Pending: never an endpoint
                gpu = b.gpu.index if b.gpu is not None else None
                if gpu is not None:
                    self.gpu_busy.setdefault(gpu, 0)
                self.ready[pool].append(TritonServer(self, pool, cfg, cal.devices[cfg.device], gpu))
        share = sc.routing.gpu_share.get(sc.routing.placement)
        self.gpu_share = share
        self.rr = {"gpu": -1, "cpu": -1}
        lo, hi = sc.traffic.wait_time_s
        self.think = lambda: self.r_think.uniform(lo, hi)
        self.users: list[list[bool]] = []  # running users' alive flags, oldest first
        self.open_gen = 0
        self.open_rate = 0.0
        self.result = NaiveResult(duration_s=sc.duration_s)

    # ------------------------------------------------------------------ routing

    def route(self) -> TritonServer | None:
        g, c = self.ready["gpu"], self.ready["cpu"]
        ng, nc = len(g), len(c)
        if ng + nc == 0:
            return None
        share = self.gpu_share if self.gpu_share is not None else ng / (ng + nc)
        pool = "gpu" if ng > 0 and (nc == 0 or self.r_route.random() < share) else "cpu"
        eps = g if pool == "gpu" else c
        if self.scenario.routing.mode == "round_robin":
            self.rr[pool] = (self.rr[pool] + 1) % len(eps)
            return eps[self.rr[pool]]
        return eps[self.r_route.randrange(len(eps))]

    # ------------------------------------------------------------------ processes

    def request(self):  # type: ignore[no-untyped-def]
        """One request, from the client's send to the client's receipt of the answer."""
        env, res = self.env, self.result
        res.offered += 1
        server = self.route()
        req = Request(env, env.now)
        if server is None or not server.submit(req):
            res.errors += 1
            yield env.timeout(ERROR_LATENCY_S)
            return
        yield req.done  # execution ended: counted now (as in the twin's windows)
        now = env.now
        lat = now - req.arrived
        ovh = server.overhead_s * self.ovh_noise[server.pool]() if server.overhead_s > 0 else 0.0
        res.served += 1
        res.latencies_s.append(lat + ovh)
        res.waits_s.append(req.started - req.arrived)
        if ovh > 0:
            yield env.timeout(ovh)

    def user(self, start_in: float, alive: list[bool]):  # type: ignore[no-untyped-def]
        """A Locust user: request, wait for the answer, think `between(lo, hi)`, repeat."""
        env = self.env
        yield env.timeout(start_in)
        while alive[0]:
            yield env.process(self.request())
            if not alive[0]:
                return
            yield env.timeout(self.think())

    def source(self, gen: int, rate: float):  # type: ignore[no-untyped-def]
        """Open loop: arrivals at `rate` until the rate changes."""
        env = self.env
        det = self.scenario.traffic.arrival == "deterministic"

        def gap() -> float:
            return (1.0 if det else self.r_open.expovariate(1.0)) / rate

        yield env.timeout(gap())
        while self.open_gen == gen:
            env.process(self.request())
            yield env.timeout(gap())

    def shaper(self):  # type: ignore[no-untyped-def]
        """Locust's LoadTestShape: every tick, users (or the open-loop rate) follow the pattern."""
        env, tr = self.env, self.scenario.traffic
        pattern = make_pattern(tr.pattern.name, tr.pattern.params, self.seed)
        while True:
            level = pattern.level(env.now)
            if tr.mode == "closed":
                n = int(round(level))
                while len(self.users) > n:
                    self.users.pop()[0] = False  # newest first; its request in flight completes
                for _ in range(n - len(self.users)):
                    flag = [True]
                    self.users.append(flag)
                    env.process(self.user(tr.shape_tick_s * self.r_spread.random(), flag))
            elif level != self.open_rate:
                self.open_rate = level
                self.open_gen += 1
                if level > 0:
                    env.process(self.source(self.open_gen, level))
            yield env.timeout(tr.shape_tick_s)

    def run(self) -> NaiveResult:
        self.env.process(self.shaper())
        self.env.run(until=self.scenario.duration_s)
        return self.result


def run_naive(scenario: Scenario, seed: int) -> NaiveResult:
    """Run the scenario's traffic against its initial replicas for `duration_s`."""
    return NaiveModel(scenario, seed).run()


__all__ = ["NaiveModel", "NaiveResult", "run_naive", "noise_sampler"]

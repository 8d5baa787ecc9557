"""A threshold autoscaler: scale on p95 latency and utilisation bands, with cooldowns.

Every agent step (30 s by default) it reads the step's Window:

* overload - p95 > ``up_p95`` x SLO, or CPU or GPU utilisation > ``up_util``: scale up,
  at most once per ``cooldown_up_s``: +1 replica, +2 when p95 > 2 x SLO or the service
  is stalled. One replica to the first GPU pool (in `Scenario.pool_names` order) that is
  below max_replicas, has no Pending pod and is not backing off; the rest to the first
  CPU pool;
* underload - p95 < ``down_p95`` x SLO and both utilisations < ``down_util``: scale
  down by one, at most once per ``cooldown_down_s`` after any scaling: the last pool
  first (CPU pools before GPU pools), never below one replica in all;
* a GPU pod that stays Pending a whole step (no GPU free) is withdrawn, and its pool is
  not scaled up again for ``gpu_backoff_s`` (the others take the load).

Over the seed layout: the GPU pool first, else the CPU pool; down the CPU pool first.

Placement stays the scenario's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.policies.base import Policy, replicas_action
from agents.policies.params import Field, help_of, parse_params
from kisim.core.config import Scenario
from kisim.core.window import Window
from kisim.env.observation import LATENCY_CAP, latency_ratio


class Threshold(Policy):
    """``threshold[:UP_P95[:DOWN_P95[:UP_UTIL[:DOWN_UTIL[:COOLDOWN_DOWN_S]]]]]`` (the bands
    as fractions of the SLO and of utilisation; defaults 0.8, 0.4, 0.75, 0.3, 180)."""

    name = "threshold"
    fields = (Field("up_p95", 0.8, 0.0, 10.0), Field("down_p95", 0.4, 0.0, 10.0),
              Field("up_util", 0.75, 0.0, 1.0), Field("down_util", 0.3, 0.0, 1.0),
              Field("cooldown_down_s", 180.0, 0.0, 3600.0, lo_incl=True))  # fmt: skip
    arg_help = help_of(fields)

    up_p95 = 0.8
    down_p95 = 0.4
    up_util = 0.75
    down_util = 0.3
    cooldown_up_s = 60.0
    cooldown_down_s = 180.0
    gpu_backoff_s = 600.0

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        if arg is not None:
            for k, v in parse_params(self.name, arg, self.fields).items():
                setattr(self, k, v)

    def reset(self, scenario: Scenario) -> None:
        self.sc = scenario
        self.last_up = self.last_change = -1e18
        self.full_until: dict[str, float] = {}  # GPU pool -> no scale-up before this time
        self.log: list[tuple[Any, ...]] = []  # (t, up/down/withdraw, target per layout pool)

    def act(self, obs: np.ndarray, w: Window | None, t: float) -> Any:
        env = self.env
        assert env is not None
        st = env.state
        assert st is not None
        if w is None:
            return env.hold()
        ctx = env.ctx
        target: dict[str, int] = dict(st.desired)
        gpus = [p for p in ctx.pools if ctx.kinds[p] == "gpu"]
        cpus = [p for p in ctx.pools if ctx.kinds[p] != "gpu"]
        lr = latency_ratio(w, ctx.slo_ms)
        cpu = 0.0 if w.cpu_util != w.cpu_util else w.cpu_util
        gpu = 0.0 if w.gpu_util != w.gpu_util else w.gpu_util
        kind = ""
        for p in gpus:
            pending = w.pool(p).pending
            if pending > 0:
                target[p], kind = target[p] - pending, "withdraw"
                self.full_until[p] = t + self.gpu_backoff_s
        if (lr > self.up_p95 or cpu > self.up_util or gpu > self.up_util) \
                and t - self.last_up >= self.cooldown_up_s:  # fmt: skip
            n = 2 if lr > 2.0 or lr >= LATENCY_CAP else 1
            for p in gpus:
                if target[p] < ctx.max_replicas[p] and w.pool(p).pending == 0 \
                        and t >= self.full_until.get(p, -1e18):  # fmt: skip
                    target[p], n = target[p] + 1, n - 1
                    break
            if n and cpus:
                c = cpus[0]
                target[c] = min(target[c] + n, ctx.max_replicas[c])
            kind, self.last_up = "up", t
        elif lr < self.down_p95 and cpu < self.down_util and gpu < self.down_util \
                and t - max(self.last_change, self.last_up) >= self.cooldown_down_s:  # fmt: skip
            total = sum(target.values())
            for p in reversed(gpus + cpus):
                if target[p] > ctx.min_replicas[p] and total > 1:
                    target[p] -= 1
                    kind = "down"
                    break
        if kind:
            self.last_change = t
            self.log.append((t, kind, *(target.get(p, 0) for p in ctx.layout)))
        return replicas_action(ctx, st.desired, target, st.placement)

"""A threshold autoscaler: scale on p95 latency and utilisation bands, with cooldowns.

Every agent step (30 s by default) it reads the step's Window:

* overload - p95 > ``up_p95`` x SLO, or CPU or GPU utilisation > ``up_util``: scale up,
  at most once per ``cooldown_up_s``: +1 replica, +2 when p95 > 2 x SLO or the service
  is stalled. The GPU pool first while it is below max_replicas and none of its pods is
  Pending, else the CPU pool;
* underload - p95 < ``down_p95`` x SLO and both utilisations < ``down_util``: scale
  down by one, at most once per ``cooldown_down_s`` after any scaling: the CPU pool
  first, the GPU pool last, never below one replica in all;
* a GPU pod that stays Pending a whole step (no GPU free) is withdrawn, and the GPU
  pool is not scaled up again for ``gpu_backoff_s`` (the CPU pool takes the load).

Placement stays the scenario's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.policies.base import Policy, replicas_action
from kisim.core.config import Scenario
from kisim.core.window import Window
from kisim.env.observation import LATENCY_CAP, latency_ratio


class Threshold(Policy):
    name = "threshold"

    up_p95 = 0.8
    down_p95 = 0.4
    up_util = 0.75
    down_util = 0.3
    cooldown_up_s = 60.0
    cooldown_down_s = 180.0
    gpu_backoff_s = 600.0

    def reset(self, scenario: Scenario) -> None:
        self.sc = scenario
        self.last_up = self.last_change = -1e18
        self.gpu_full_until = -1e18
        self.log: list[tuple[float, str, int, int]] = []  # (t, up/down/withdraw, gpu, cpu)

    def act(self, obs: np.ndarray, w: Window | None, t: float) -> Any:
        env = self.env
        assert env is not None
        st = env.state
        assert st is not None
        if w is None:
            return env.hold()
        ctx = env.ctx
        g, c = st.desired.get("gpu"), st.desired.get("cpu")
        lr = latency_ratio(w, ctx.slo_ms)
        cpu = 0.0 if w.cpu_util != w.cpu_util else w.cpu_util
        gpu = 0.0 if w.gpu_util != w.gpu_util else w.gpu_util
        kind = ""
        if g is not None and w.gpu_pending > 0:
            g, kind = g - w.gpu_pending, "withdraw"
            self.gpu_full_until = t + self.gpu_backoff_s
        if (lr > self.up_p95 or cpu > self.up_util or gpu > self.up_util) \
                and t - self.last_up >= self.cooldown_up_s:  # fmt: skip
            n = 2 if lr > 2.0 or lr >= LATENCY_CAP else 1
            if g is not None and g < ctx.max_replicas["gpu"] and w.gpu_pending == 0 \
                    and t >= self.gpu_full_until:  # fmt: skip
                g, n = g + 1, n - 1
            if n and c is not None:
                c = min(c + n, ctx.max_replicas["cpu"])
            kind, self.last_up = "up", t
        elif lr < self.down_p95 and cpu < self.down_util and gpu < self.down_util \
                and t - max(self.last_change, self.last_up) >= self.cooldown_down_s:  # fmt: skip
            total = (g or 0) + (c or 0)
            if c is not None and c > ctx.min_replicas["cpu"] and total > 1:
                c -= 1
                kind = "down"
            elif g is not None and g > ctx.min_replicas["gpu"] and total > 1:
                g -= 1
                kind = "down"
        if kind:
            self.last_change = t
            self.log.append((t, kind, g or 0, c or 0))
        return replicas_action(st.desired, g, c, st.placement)

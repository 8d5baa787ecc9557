"""The static policy's run of the same scenario, pattern and seed: the `static` reward baseline.

Always run in the twin (a cluster cannot rerun an episode for free): with a cluster backend
the reference is the twin's static run of the same scenario. Runs are cached per env (or per
set of envs that share one `StaticReferences`), least recently used first out.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from kisim.core.backends import make_backend
from kisim.core.config import Scenario
from kisim.env.context import EnvContext
from kisim.env.rewards import Reference

_EPS = 1e-9


class StaticReferences:
    """Per-step references (p95, throughput, GPU utilisation) of static runs, cached."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._cache: OrderedDict[tuple[str, int, float], list[Reference]] = OrderedDict()

    def get(self, sc: Scenario, fingerprint: str, seed: int, ctx: EnvContext) -> list[Reference]:
        key = (fingerprint, seed, ctx.step_s)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        refs = static_run(sc, seed, ctx)
        self._cache[key] = refs
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return refs


def static_run(sc: Scenario, seed: int, ctx: EnvContext) -> list[Reference]:
    """One reference per agent step of the twin's run of `sc` (its controller: static)."""
    b = make_backend("twin")
    b.reset(sc, seed)
    refs: list[Reference] = []
    t = 0.0
    while t < sc.duration_s - _EPS:
        w = b.advance(min(ctx.step_s, sc.duration_s - t))
        t = w.t_end
        p95 = w.latency_p95_ms if math.isfinite(w.latency_p95_ms) else ctx.slo_ms
        tp = w.throughput_rps if math.isfinite(w.throughput_rps) else 0.0
        g = w.gpu_util if math.isfinite(w.gpu_util) else 0.0
        refs.append(Reference(max(p95, 1e-3), tp, min(max(g, 0.0), 1.0)))
    b.close()
    return refs

"""How the Service splits requests between pools: `RouteTable` (groups and their weights per
placement) and `pool_shares` (the fraction each pool gets, given its ready endpoints).

The twin's kernel (`twin.kernel._route`) draws one uniform number per request and applies the
same rule; `pool_shares` is that rule in closed form, for policies that need to know where
the load goes (the KPA) and for the real router (`bridge.router`).
"""

from __future__ import annotations

from collections.abc import Mapping

from kisim.core.config import Scenario


class RouteTable:
    """The Service's split of traffic between pools, per placement (`RoutingConfig`).

    Pools are routed in groups: with `routing.weights` every pool is its own group, weighted
    per placement; with `routing.gpu_share` the GPU pools form one group and the CPU pools
    another (each side uniform over its ready endpoints), weighted share : 1 - share, or by
    endpoint count (weight -1) where the share is null. Groups follow `Scenario.pool_names`,
    so the seed layout has two groups, (gpu,) then (cpu,).
    """

    def __init__(self, scenario: Scenario) -> None:
        rt = scenario.routing
        names = scenario.pool_names
        self._weights = rt.weights
        self._share = rt.gpu_share
        self.groups: list[tuple[str, ...]]
        self._kinds: list[str] = []
        if rt.weights is not None:
            self.groups = [(p,) for p in names]
        else:
            kinds = {p: scenario.pool_kind(p) for p in names}
            by_kind = {k: tuple(p for p in names if kinds[p] == k) for k in ("gpu", "cpu")}
            self._kinds = [k for k in ("gpu", "cpu") if by_kind[k]]
            self.groups = [by_kind[k] for k in self._kinds]

    def weights(self, placement: str) -> list[float]:
        """The weight of each group under `placement` (-1: by endpoint count)."""
        if self._weights is not None:
            ws = self._weights.get(placement, {})
            return [float(ws.get(g[0], 0.0)) for g in self.groups]
        share = self._share.get(placement)
        if share is None:
            return [-1.0] * len(self.groups)
        return [share if k == "gpu" else 1.0 - share for k in self._kinds]

    def shares(self, placement: str, ready: Mapping[str, int]) -> dict[str, float]:
        """The fraction of requests each pool gets with `ready` endpoints per pool.

        Exactly the kernel's rule: groups with a ready endpoint split [0, 1) by weight
        (renormalised; the last takes what is left, 1 - the others), a group splits its part
        by endpoint count. With no ready endpoint anywhere the last group is attributed the
        whole (the rule's degenerate case; its requests fail)."""
        gw = self.weights(placement)
        n = [sum(ready.get(p, 0) for p in g) for g in self.groups]
        eligible = [i for i, k in enumerate(n) if k > 0]
        part = [0.0] * len(self.groups)
        if len(eligible) <= 1:
            part[eligible[0] if eligible else len(self.groups) - 1] = 1.0
        else:
            total = sum(gw[i] if gw[i] >= 0.0 else n[i] for i in eligible)
            by_count = total <= 0.0
            if by_count:
                total = float(sum(n[i] for i in eligible))
            lo = 0.0
            for i in eligible[:-1]:
                s = (n[i] if (by_count or gw[i] < 0.0) else gw[i]) / total
                part[i] = s
                lo += s
            part[eligible[-1]] = 1.0 - lo
        out: dict[str, float] = {}
        for i, g in enumerate(self.groups):
            for p in g:
                out[p] = part[i] * (ready.get(p, 0) / n[i] if n[i] else 1.0 / len(g))
        return out

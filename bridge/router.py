"""The Service in front of the pools, as the load generator applies it per request.

Why client-side: kube-proxy in iptables mode is in-kernel DNAT that adds no hop and no
user-space copy. A Python reverse proxy here would add a 600 KB copy per request and a
CPU-hungry process on a 2-core machine — a cost no real Service has. So the load
generator picks, for every request, one ready endpoint exactly as the twin's router does
(`twin/kernel.py::_route`): the GPU pool with probability `gpu_share` (or by endpoint
count when the placement's share is null), all traffic to the other pool when one has no
ready endpoint, an error only when neither has; within a pool uniformly at random
(iptables `statistic --mode random`) or round-robin (IPVS `rr`). Endpoint lists come from
the actuator's readiness, like EndpointSlices; on a cluster the list is the Service URL.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Router:
    mode: str = "random"  # random | round_robin
    gpu_share: float | None = None  # None: by ready endpoint count
    endpoints: dict[str, list[str]] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    _rr: dict[str, int] = field(default_factory=dict)

    def pick(self) -> tuple[str, str | None]:
        """(pool, endpoint) for the next request; endpoint None when nothing is ready."""
        g = self.endpoints.get("gpu", [])
        c = self.endpoints.get("cpu", [])
        if not g and not c:
            pools = [p for p in ("gpu", "cpu") if p in self.endpoints] or ["cpu"]
            return pools[0], None
        share = self.gpu_share if self.gpu_share is not None else len(g) / (len(g) + len(c))
        pool, eps = ("gpu", g) if g and (not c or self.rng.random() < share) else ("cpu", c)
        if self.mode == "round_robin":
            i = self._rr[pool] = (self._rr.get(pool, -1) + 1) % len(eps)
            return pool, eps[i]
        return pool, eps[self.rng.randrange(len(eps))]

"""``fixed:POOL=N[,POOL=N...]``: a constant configuration - the listed pools at N pods each,
every other pool at 0, no autoscaler (a scenario transform, like ``static-<pool>:N`` but for
any pools, the seed layout's ``gpu`` and ``cpu`` included). The benchmark's best constant
configuration is searched over these."""

from __future__ import annotations

from agents.policies.base import InClusterPolicy
from kisim.core.config import POOL_NAME, Scenario, override
from kisim.core.errors import KisimError


class Fixed(InClusterPolicy):
    name = "fixed"
    arg_help = "pool=N[,pool=N...], e.g. fixed:gpu=3 or fixed:a10g=2,cpu=1"

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        if arg is None:
            raise KisimError("policy 'fixed' needs pool=N[,pool=N...], e.g. fixed:gpu=3")
        self.counts: dict[str, int] = {}
        for part in arg.split(","):
            pool, sep, n = part.partition("=")
            if not sep or not POOL_NAME.match(pool.strip()):
                raise KisimError(f"policy 'fixed:{arg}': '{part}' is not pool=N")
            try:
                k = int(n)
            except ValueError:
                raise KisimError(f"policy 'fixed:{arg}': '{n}' is not an integer") from None
            if not 0 <= k <= 1000:
                raise KisimError(f"policy 'fixed:{arg}': {k} must lie in 0..1000")
            self.counts[pool.strip()] = k

    def scenario(self, sc: Scenario) -> Scenario:
        unknown = [p for p in self.counts if p not in sc.pools]
        if unknown:
            raise KisimError(f"policy fixed:{self.arg}: no pool '{unknown[0]}' "
                             f"(pools: {', '.join(sc.pools)})")  # fmt: skip
        if not any(self.counts.values()):
            raise KisimError(f"policy fixed:{self.arg}: no pod in any pool")
        d: dict[str, object] = {"controller.name": "static"}
        for pool, cfg in sc.pools.items():
            n = self.counts.get(pool, 0)
            d[f"pools.{pool}.replicas"] = n
            d[f"pools.{pool}.min_replicas"] = min(n, cfg.min_replicas)
            d[f"pools.{pool}.max_replicas"] = max(n, cfg.max_replicas)
        return override(sc, f"policy fixed:{self.arg}", **d)

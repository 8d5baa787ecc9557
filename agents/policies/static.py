"""Static baselines: fixed Deployments, no autoscaler (scenario transforms).

``static`` keeps every pool at its initial replicas; ``static-<pool>[:N]`` runs one pool
alone (N pods, default max(1, its initial replicas)) with every other pool at 0.
``static-gpu`` and ``static-cpu[:N]`` are that for the seed layout's pools, with the
pod-for-pod comparison of the original experiments (`StaticCPU`)."""

from __future__ import annotations

from agents.policies.base import InClusterPolicy, parse_int
from kisim.core.config import Scenario, override
from kisim.core.errors import KisimError


def _gpu_replicas(sc: Scenario) -> int:
    return max(1, sc.pools["gpu"].replicas) if "gpu" in sc.pools else 0


class Static(InClusterPolicy):
    """The experiment plan's baseline: both pools at the scenario's initial replicas, each
    pod 2 cores and 4 GiB (requests = limits), a GPU pod with 1 GPU; no autoscaler."""

    name = "static"

    def scenario(self, sc: Scenario) -> Scenario:
        d: dict[str, object] = {"controller.name": "static"}
        for pool in sc.pools:
            d[f"pools.{pool}.resources"] = {"cpu": 2.0, "memory_gib": 4.0,
                                            "gpu": 1 if sc.pool_kind(pool) == "gpu" else 0}  # fmt: skip
        return override(sc, f"policy {self.name}", **d)


class StaticGPU(InClusterPolicy):
    """GPU pool only: max(1, the scenario's GPU replicas) GPU pods, no CPU pods."""

    name = "static-gpu"

    def scenario(self, sc: Scenario) -> Scenario:
        d: dict[str, object] = {"controller.name": "static"}
        if "gpu" not in sc.pools or sc.pools["gpu"].max_replicas < 1:
            raise KisimError(f"policy {self.name}: the scenario has no GPU pool that can run pods")
        d["pools.gpu.replicas"] = _gpu_replicas(sc)
        d["pools.gpu.min_replicas"] = min(sc.pools["gpu"].min_replicas, _gpu_replicas(sc))
        if "cpu" in sc.pools:
            d["pools.cpu.replicas"] = 0
            d["pools.cpu.min_replicas"] = 0
        return override(sc, f"policy {self.name}", **d)


class StaticCPU(InClusterPolicy):
    """CPU pool only. Fair comparison with `static-gpu`: pod for pod - as many CPU pods as
    static-gpu has GPU pods, each with the same CPU and memory, so the GPU is the only
    difference (what the original GPU-vs-CPU experiments compared). ``static-cpu:N``
    sets N pods, e.g. ``static-cpu:4`` for equal cost at the default 4:1 price ratio."""

    name = "static-cpu"
    arg_help = "number of CPU pods (default: as many as static-gpu's GPU pods)"

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        self.n = parse_int(f"{self.name}:{arg}", arg, 1, 1000) if arg is not None else None

    def scenario(self, sc: Scenario) -> Scenario:
        if "cpu" not in sc.pools or sc.pools["cpu"].max_replicas < 1:
            raise KisimError(f"policy {self.name}: the scenario has no CPU pool that can run pods")
        n = self.n if self.n is not None else max(1, _gpu_replicas(sc))
        cpu = sc.pools["cpu"]
        d: dict[str, object] = {"controller.name": "static", "pools.cpu.replicas": n,
                                "pools.cpu.max_replicas": max(n, cpu.max_replicas),
                                "pools.cpu.min_replicas": min(n, cpu.min_replicas)}  # fmt: skip
        if "gpu" in sc.pools:
            d["pools.gpu.replicas"] = 0
            d["pools.gpu.min_replicas"] = 0
            r = sc.pools["gpu"].resources
            d["pools.cpu.resources"] = {"cpu": r.cpu, "memory_gib": r.memory_gib, "gpu": 0}
        return override(sc, f"policy {self.name}", **d)


class StaticPool(InClusterPolicy):
    """``static-<pool>[:N]``: only `pool` runs, N pods (default max(1, its initial replicas));
    every other pool at 0; no autoscaler."""

    name = "static-<pool>"
    arg_help = "number of pods of the pool (default: max(1, its initial replicas))"

    def __init__(self, arg: str | None = None, pool: str = "") -> None:
        super().__init__(arg)
        self.pool = pool
        self.name = f"static-{pool}"  # type: ignore[misc]
        self.n = parse_int(f"{self.name}:{arg}", arg, 1, 1000) if arg is not None else None

    def scenario(self, sc: Scenario) -> Scenario:
        cfg = sc.pools.get(self.pool)
        if cfg is None or cfg.max_replicas < 1:
            raise KisimError(f"policy {self.name}: the scenario has no pool '{self.pool}' that "
                             f"can run pods (pools: {', '.join(sc.pools)})")  # fmt: skip
        n = self.n if self.n is not None else max(1, cfg.replicas)
        d: dict[str, object] = {"controller.name": "static", f"pools.{self.pool}.replicas": n,
                                f"pools.{self.pool}.max_replicas": max(n, cfg.max_replicas),
                                f"pools.{self.pool}.min_replicas": min(n, cfg.min_replicas)}  # fmt: skip
        for other in sc.pools:
            if other != self.pool:
                d[f"pools.{other}.replicas"] = 0
                d[f"pools.{other}.min_replicas"] = 0
        return override(sc, f"policy {self.name}", **d)

"""``POLICY@SETUP``: a policy run on the deployment an operator would choose for it.

A rule-based autoscaler scales replica counts; it does not choose how a Service splits traffic
between pools, nor whether a pool runs at all. Kubernetes' HPA does not scale a Deployment at
0 replicas (``ScalingDisabled``), so a pool that starts empty stays empty under it; and the
split between GPU and CPU pods is the operator's configuration (Service weights, a gateway's
routes). Judged on the scenario's own starting point, a rule can be held back by a setup no
operator would deploy (a GPU pool never started, 60 % of the traffic sent to CPU pods that
cannot hold it), so the benchmark tunes the setup with the rule's parameters
(`agents.benchmark.tuning`, docs/benchmark.md).

``SETUP`` is ``PLACEMENT`` (a key of the scenario's ``routing`` placements: the traffic split
at the start), optionally followed by ``+POOL=N`` floors (the pool starts with at least N pods
and keeps them: ``replicas`` and ``min_replicas`` raised to N), e.g. ``hpa:0.45:0@gpu-85``,
``hpa@balanced+t4=1+a10g=1``; ``@+cpu=1`` sets floors only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kisim.core.config import Scenario, override
from kisim.core.errors import KisimError

_SETUP = re.compile(r"^(?P<placement>[A-Za-z0-9_.-]*)(?P<floors>(\+[a-z][a-z0-9]*=\d+)*)$")


@dataclass(frozen=True)
class Setup:
    placement: str | None
    floors: tuple[tuple[str, int], ...] = ()

    @property
    def text(self) -> str:
        return (self.placement or "") + "".join(f"+{p}={n}" for p, n in self.floors)

    def apply(self, sc: Scenario, who: str) -> Scenario:
        """`sc` with this setup; a placement or pool the scenario lacks -> KisimError."""
        d: dict[str, object] = {}
        if self.placement is not None:
            if self.placement not in sc.routing.placements:
                raise KisimError(f"policy {who}: no placement '{self.placement}' (placements: "
                                 f"{', '.join(sc.routing.placements)})")  # fmt: skip
            d["routing.placement"] = self.placement
        for pool, n in self.floors:
            cfg = sc.pools.get(pool)
            if cfg is None:
                raise KisimError(f"policy {who}: no pool '{pool}' (pools: {', '.join(sc.pools)})")
            if n > cfg.max_replicas:
                raise KisimError(f"policy {who}: {pool}={n} exceeds the pool's max_replicas "
                                 f"{cfg.max_replicas}")  # fmt: skip
            d[f"pools.{pool}.replicas"] = max(n, cfg.replicas)
            d[f"pools.{pool}.min_replicas"] = max(n, cfg.min_replicas)
        return override(sc, f"policy {who}", **d) if d else sc


def split_setup(spec: str) -> tuple[str, Setup | None]:
    """``POLICY@SETUP`` -> (POLICY, Setup); a spec without a setup suffix -> (spec, None).

    Only a last ``@`` followed by a well-formed setup counts (a ``ppo:`` path may hold ``@``)."""
    base, sep, tail = spec.rpartition("@")
    m = _SETUP.match(tail) if sep and base else None
    if m is None:
        return spec, None
    floors = tuple((p, int(n)) for p, n in (f.split("=") for f in m["floors"].split("+")[1:]))
    if not m["placement"] and not floors:
        raise KisimError(f"policy '{spec}': empty setup after '@'")
    pools = [p for p, _ in floors]
    if len(set(pools)) != len(pools):
        raise KisimError(f"policy '{spec}': a pool named twice in the setup")
    return base, Setup(m["placement"] or None, floors)

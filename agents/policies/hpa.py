"""The Kubernetes HPA v2 on CPU: the twin's faithful in-cluster controller (`twin.hpa`)."""

from __future__ import annotations

from agents.policies.base import InClusterPolicy, parse_float
from kisim.config import Scenario, override


class HPA(InClusterPolicy):
    """`controller.name: hpa` with the scenario's HPA settings; ``hpa:0.5`` sets the target
    CPU utilisation (averageUtilization 50 %)."""

    name = "hpa"
    arg_help = "target CPU utilisation in (0, 1], e.g. hpa:0.5"

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        self.target = parse_float(f"hpa:{arg}", arg, 0.0, 1.0) if arg is not None else None

    def scenario(self, sc: Scenario) -> Scenario:
        d: dict[str, object] = {"controller.name": "hpa"}
        pools = sc.hpa_pools()
        if pools != list(sc.controller.hpa.pools):  # the resolved scenario names the HPAs made
            d["controller.hpa.pools"] = pools
        if self.target is not None:
            d["controller.hpa.target_cpu_utilization"] = self.target
        return override(sc, f"policy {self.name}", **d)

"""The Kubernetes HPA v2 on CPU: in the cluster (the twin's faithful controller `kisim.core.hpa`, or a
real HPA object), or the same algorithm run by kisim where there is no HPA (local)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from agents.policies.base import InClusterPolicy, Policy, parse_float
from agents.policies.params import Field, parse_params
from kisim.core.backend import Action, PodView, PoolSetting
from kisim.core.config import Scenario, override
from kisim.core.hpa import HorizontalPodAutoscaler, PodSample
from kisim.core.window import Window

if TYPE_CHECKING:
    from kisim.env.environment import KisimEnv


BEHAVIOUR = (Field("down_stab_s", 300.0, 0.0, 3600.0, lo_incl=True),
             Field("up_stab_s", 0.0, 0.0, 3600.0, lo_incl=True))


class HPA(InClusterPolicy):
    """`controller.name: hpa` with the scenario's HPA settings; ``hpa:0.5`` sets the target
    CPU utilisation (averageUtilization 50 %), ``hpa:0.5:60`` also
    ``behavior.scaleDown.stabilizationWindowSeconds`` (60 s) and ``hpa:0.5:60:15``
    ``behavior.scaleUp.stabilizationWindowSeconds`` (15 s); left out, the scenario's."""

    name = "hpa"
    arg_help = ("target CPU utilisation in (0, 1][:scale-down stabilisation s[:scale-up "
                "stabilisation s]], e.g. hpa:0.5 or hpa:0.5:60")  # fmt: skip

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        parts = arg.split(":") if arg is not None else []
        self.target = parse_float(f"hpa:{arg}", parts[0], 0.0, 1.0) if parts else None
        rest = ":".join(parts[1:]) or None
        vals = parse_params(f"hpa:{parts[0] if parts else ''}", rest, BEHAVIOUR)
        given = [i + 1 < len(parts) and parts[i + 1] != "" for i in range(len(BEHAVIOUR))]
        self.behaviour = {f.name: vals[f.name] for f, g in zip(BEHAVIOUR, given, strict=True) if g}

    def scenario(self, sc: Scenario) -> Scenario:
        d: dict[str, object] = {"controller.name": "hpa"}
        pools = sc.hpa_pools()
        if sc.controller.hpa.pools != pools:  # the resolved scenario names the HPAs made
            d["controller.hpa.pools"] = pools
        if self.target is not None:
            d["controller.hpa.target_cpu_utilization"] = self.target
        if "down_stab_s" in self.behaviour:
            d["controller.hpa.scale_down_stabilization_s"] = self.behaviour["down_stab_s"]
        if "up_stab_s" in self.behaviour:
            d["controller.hpa.scale_up_stabilization_s"] = self.behaviour["up_stab_s"]
        return override(sc, f"policy {self.name}", **d)

    def for_backend(self, in_cluster_hpa: bool) -> Policy:
        return self if in_cluster_hpa else ExternalHPA(self.arg)


class ExternalHPA(Policy):
    """The same HPA v2 decision (`kisim.core.hpa.HorizontalPodAutoscaler`) run by kisim from
    outside, for a backend with no HorizontalPodAutoscaler (the local stack).

    Every ``sync_period_s`` (first sync one period after the start, as the controller's
    first resync) it lists the pool's live pods and their CPU use over the last
    ``metrics_server_resolution_s`` from Prometheus (what metrics-server would report),
    runs the controller's algorithm — tolerance, unready-pod handling, stabilisation
    window, scaling policies — and scales through the backend. On a real cluster
    (`--backend kubernetes`) the `hpa` policy creates a real HPA object instead.
    """

    name = "hpa"
    arg_help = HPA.arg_help
    action = "none"
    period_s = 15.0

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        self.in_cluster = HPA(arg)
        self.hpas: dict[str, HorizontalPodAutoscaler] = {}
        self.backend: Any = None

    def scenario(self, sc: Scenario) -> Scenario:
        run = override(self.in_cluster.scenario(sc), "policy hpa (outside the cluster)",
                       **{"controller.name": "external"})  # fmt: skip
        self.period_s = run.controller.hpa.sync_period_s
        return run

    def reset(self, scenario: Scenario) -> None:
        cfg = scenario.controller.hpa
        self.metric_window_s = scenario.metrics.metrics_server_resolution_s
        self.hpas = {pool: HorizontalPodAutoscaler(cfg, max(1, scenario.pools[pool].min_replicas),
                                                   scenario.pools[pool].max_replicas)
                     for pool in scenario.hpa_pools()}  # fmt: skip

    def attach(self, env: KisimEnv) -> None:
        super().attach(env)
        self.backend = env.backend

    def act(self, obs: np.ndarray, window: Window | None, t: float) -> Any:
        return 0

    def tick(self, w: Window, t: float) -> Action | None:
        pools: dict[str, PoolSetting] = {}
        for pool, hpa in self.hpas.items():
            current = w.pool(pool).desired
            pods = [_sample(v) for v in self.backend.pod_views(pool, self.metric_window_s)]
            desired = hpa.sync(t, current, pods)
            if desired != current:
                pools[pool] = PoolSetting(replicas=desired)
        return Action(pools=pools) if pools else None


def _sample(v: PodView) -> PodSample:
    """A `kisim.core.backend.PodView` as the controller's pod lister + metrics API show it:
    a started container is Running; its Ready condition flipped when it became ready
    (or was set False at start)."""
    return PodSample(
        name=v.name, phase="Running", deleting=v.deleting, ready=v.ready_s is not None,
        start_time=v.created_s,
        ready_transition_time=v.ready_s if v.ready_s is not None else v.created_s,
        cpu_request=v.cpu_request, cpu_usage=v.cpu_usage, metric_timestamp=v.metric_s,
        metric_window=v.metric_window_s,
    )  # fmt: skip

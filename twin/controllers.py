"""Controllers that run inside the simulated cluster: static, or the HPA on CPU."""

from __future__ import annotations

import simpy

from kisim.core.config import Scenario
from kisim.core.hpa import HorizontalPodAutoscaler
from twin.observe import Observer
from twin.pods import PodManager


class HPAController:
    """One `HorizontalPodAutoscaler` per pool that gets one (`Scenario.hpa_pools`: a pool
    that cannot run a pod gets none), synced every `sync_period_s`."""

    def __init__(self, env: simpy.Environment, pods: PodManager, obs: Observer, scenario: Scenario):
        self.env, self.pods, self.obs = env, pods, obs
        cfg = scenario.controller.hpa
        self.hpas = {
            pool: HorizontalPodAutoscaler(cfg, max(1, scenario.pools[pool].min_replicas),
                                          scenario.pools[pool].max_replicas)
            for pool in scenario.hpa_pools()
        }  # fmt: skip
        self.period = cfg.sync_period_s
        env.process(self._loop())

    def set_target(self, target: float) -> None:
        for h in self.hpas.values():
            h.set_target(target)

    def _loop(self):  # type: ignore[no-untyped-def]
        env = self.env
        yield env.timeout(self.period)  # first sync one period after the HPA is created
        while True:
            for pool, hpa in self.hpas.items():
                current = self.pods.desired[pool]
                desired = hpa.sync(env.now, current, self.obs.pod_samples(pool))
                if desired != current:
                    self.pods.scale(pool, desired)
            yield env.timeout(self.period)

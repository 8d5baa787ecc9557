"""The autoscalers an agent steers through the `min-scale` preset (`kisim.env.autoscalers`).

``kpa[:ARG]``: Knative's KPA of `agents.policies.kpa` (ARG as the ``kpa`` policy's), every 2 s,
with the min-scale the agent last set applied after its decision - exactly as ``cron-kpa``
applies its schedule's (`agents.policies.cron`).

``keda[:ARG]``: KEDA's request-rate scaler of `agents.policies.metric_hpa` (ARG as the ``keda``
policy's, its down-stabilisation window included) through the HPA every 15 s, with the agent's
floor as a second trigger (the HPA takes the larger proposal) - exactly as ``cron-keda``'s
``cron`` trigger.

So an agent in this preset is the CronJob or the cron trigger: told nothing, it must learn
when to raise the floor.
"""

from __future__ import annotations

from agents.policies.kpa import KPA
from agents.policies.metric_hpa import KEDA
from kisim.core.config import Scenario
from kisim.core.window import Window
from kisim.env.autoscalers import AUTOSCALERS, Floors


class _Floored:
    """An autoscaler whose second trigger (`floors`) asks for the agent's floor."""

    def __init__(self, arg: str | None, floors: Floors) -> None:
        super().__init__(arg)  # type: ignore[call-arg]
        self._floors = floors

    def floors(self, w: Window, t: float) -> dict[str, int]:
        return dict(self._floors(t))


class FlooredKPA(_Floored, KPA):
    """The KPA whose min-scale is the agent's floor."""


class FlooredKEDA(_Floored, KEDA):
    """KEDA whose cron trigger asks for the agent's floor."""

    def reset(self, scenario: Scenario) -> None:
        super().reset(self.scenario(scenario))  # the HPA's windows, as the policy runs them


AUTOSCALERS["kpa"] = FlooredKPA
AUTOSCALERS["keda"] = FlooredKEDA

__all__ = ["FlooredKEDA", "FlooredKPA"]

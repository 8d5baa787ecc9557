"""The autoscalers an agent steers through the `min-scale` preset (`kisim.env.autoscalers`).

``kpa[:ARG]``: Knative's KPA of `agents.policies.kpa` (ARG as the ``kpa`` policy's), every 2 s,
with the min-scale the agent last set applied after its decision - exactly as ``cron-kpa``
applies its schedule's (`agents.policies.cron`). So an agent in this preset is the CronJob:
told nothing, it must learn when to raise the floor.
"""

from __future__ import annotations

from agents.policies.kpa import KPA
from kisim.core.window import Window
from kisim.env.autoscalers import AUTOSCALERS, Floors


class FlooredKPA(KPA):
    """The KPA whose min-scale is the agent's floor."""

    def __init__(self, arg: str | None, floors: Floors) -> None:
        super().__init__(arg)
        self._floors = floors

    def floors(self, w: Window, t: float) -> dict[str, int]:
        return dict(self._floors(t))


AUTOSCALERS["kpa"] = FlooredKPA

__all__ = ["FlooredKPA"]

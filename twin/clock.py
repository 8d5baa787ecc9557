"""SimPy owns time: before each control-plane event the data plane catches up to it."""

from __future__ import annotations

import math

import simpy
from simpy.core import EmptySchedule

from twin.dataplane import DataPlane


class TwinClock(simpy.Environment):
    """A `simpy.Environment` whose `step()` first runs request events up to the next event.

    Request events live in the data plane's own heap (no generator per request);
    this hook is the only coupling, so control processes (pods, HPA, scrapes,
    windows, agent steps) always observe the data plane at exactly their time.
    """

    def __init__(self, dataplane: DataPlane) -> None:
        super().__init__()
        self.dataplane = dataplane

    def step(self) -> None:
        t = self.peek()
        if math.isinf(t):
            raise EmptySchedule()
        if t > self.dataplane.now:
            self.dataplane.run_until(t)
        super().step()

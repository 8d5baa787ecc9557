"""In-cluster autoscalers an agent steers through their min-scale (the `min-scale` preset).

The env owns one when its action preset needs it (``env.autoscaler``): it ticks inside every
agent step at its own period (as a policy's inner controller does), starts afresh at each
reset, and reads the floors the agent set from the env's state. The autoscalers themselves
are policies' algorithms and live above the env; they register here by name
(`agents.policies.min_scale`), so the env never imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from kisim.core.backend import Action
from kisim.core.config import Scenario
from kisim.core.errors import ConfigError
from kisim.core.window import Window

Floors = Callable[[float], Mapping[str, int]]  # the floor per pool at time t


class Autoscaler(Protocol):
    """An inner controller that applies the agent's floors after its own decision."""

    period_s: float

    def reset(self, scenario: Scenario) -> None:
        """A new episode of `scenario` begins."""

    def tick(self, window: Window, t: float) -> Action | None:
        """One decision from the Window of one period; applied at once."""


AUTOSCALERS: dict[str, Callable[[str | None, Floors], Autoscaler]] = {}


def make_autoscaler(spec: str, floors: Floors, where: str) -> Autoscaler:
    """The autoscaler ``name[:ARG]`` reading `floors`; an unknown name is a ConfigError."""
    name, _, arg = spec.partition(":")
    make = AUTOSCALERS.get(name)
    if make is None:
        known = ", ".join(sorted(AUTOSCALERS)) or "none registered: import agents.policies"
        raise ConfigError(f"{where}: env.autoscaler: unknown autoscaler '{name}' (known: {known})")
    return make(arg or None, floors)


__all__ = ["AUTOSCALERS", "Autoscaler", "Floors", "make_autoscaler"]

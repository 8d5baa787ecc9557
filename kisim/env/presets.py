"""Checks a scenario's ``env`` section against the preset registries.

The schema (`kisim.core.env_section`) cannot see the presets without importing upward, so
the names are checked here, where they are registered; the error names the scenario's
file and the field, as a schema error would.
"""

from __future__ import annotations

from kisim.core.config import Scenario
from kisim.core.errors import ConfigError
from kisim.env import platform_presets  # noqa: F401 - registers the platform presets
from kisim.env.actions import ACTIONS
from kisim.env.observation import OBSERVATIONS
from kisim.env.rewards import REWARDS


def check_presets(sc: Scenario, source: str | None = None) -> None:
    """Raise ConfigError for an unknown observation/action/reward preset or reward term."""
    where = source or sc.source
    regs = {"observation": OBSERVATIONS, "action": ACTIONS, "reward": REWARDS}
    for field, reg in regs.items():
        name = getattr(sc.env, field)
        if name not in reg:
            raise ConfigError(f"{where}: env.{field}: unknown preset '{name}' "
                              f"(known: {', '.join(reg)})")  # fmt: skip
        if reg[name].needs_platform and sc.platform is None:
            raise ConfigError(f"{where}: env.{field}: preset '{name}' needs a scenario with a "
                              "platform section")  # fmt: skip
    if ACTIONS[sc.env.action].needs_autoscaler and sc.env.autoscaler is None:
        raise ConfigError(f"{where}: env.action: preset '{sc.env.action}' needs "
                          "env.autoscaler (the in-cluster autoscaler whose floor it sets, "
                          "e.g. kpa:1:10)")  # fmt: skip
    preset = REWARDS[sc.env.reward]
    for k in sc.env.reward_weights:
        if k not in preset.default_weights:
            terms = ", ".join(preset.default_weights)
            raise ConfigError(f"{where}: env.reward_weights: '{k}' is not a term of "
                              f"'{preset.name}' (terms: {terms})")

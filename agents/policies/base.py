"""The policy contract shared by every baseline, the oracle and PPO.

A policy is a small object made from a spec (``name`` or ``name:ARG``):

* in-cluster policies (``in_cluster = True``) change the scenario (`scenario()`: a
  controller, replica counts, resources) and then only watch: they run through
  `KisimEnv` with the ``none`` action preset, so every policy is scored by the same
  reward;
* env-driven policies speak an action preset (``action``, default ``replicas``) at a
  cadence (``step_s``, None = the scenario's ``env.step_s``): `reset(scenario)` at the
  start of an episode, `attach(env)` gives them the env (its `state` and `hold()`),
  then `act(obs, window, t)` once per step (`window` is None before the first step).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from kisim.core.config import Scenario
from kisim.core.errors import KisimError
from kisim.core.window import Window

if TYPE_CHECKING:
    from kisim.env.context import EnvContext
    from kisim.env.environment import KisimEnv


class Policy:
    name: ClassVar[str]
    in_cluster: ClassVar[bool] = False
    arg_help: ClassVar[str] = ""  # what ":ARG" means, for error messages; "" = takes none

    action: str | None = "replicas"  # env action preset; None = the scenario's env.action
    step_s: float | None = None  # agent step; None = the scenario's env.step_s
    trust_model: bool = False  # a policy loaded from files may unpickle them (--trust-model)

    def __init__(self, arg: str | None = None) -> None:
        if arg is not None and not self.arg_help:
            raise KisimError(f"policy '{self.name}' takes no argument (got '{self.name}:{arg}')")
        self.arg = arg
        self.env: KisimEnv | None = None

    def scenario(self, sc: Scenario) -> Scenario:
        """The scenario this policy runs on (in-cluster policies change it)."""
        return sc

    def for_backend(self, in_cluster_hpa: bool) -> Policy:
        """The policy to run on a backend that can (or cannot) host a real HPA object."""
        return self

    def reset(self, scenario: Scenario) -> None:
        """A new episode of `scenario` (as the env runs it) begins."""

    def attach(self, env: KisimEnv) -> None:
        self.env = env

    def act(self, obs: np.ndarray, window: Window | None, t: float) -> Any:
        raise NotImplementedError


class InClusterPolicy(Policy):
    """Acts by changing the scenario; during the episode it only watches."""

    in_cluster = True
    action = "none"

    def act(self, obs: np.ndarray, window: Window | None, t: float) -> Any:
        return 0


def parse_float(spec: str, arg: str, lo: float, hi: float) -> float:
    try:
        x = float(arg)
    except ValueError:
        raise KisimError(f"policy '{spec}': '{arg}' is not a number") from None
    if not lo < x <= hi:
        raise KisimError(f"policy '{spec}': {arg} must lie in ({lo:g}, {hi:g}]")
    return x


def parse_int(spec: str, arg: str, lo: int, hi: int) -> int:
    try:
        x = int(arg)
    except ValueError:
        raise KisimError(f"policy '{spec}': '{arg}' is not an integer") from None
    if not lo <= x <= hi:
        raise KisimError(f"policy '{spec}': {arg} must lie in {lo}..{hi}")
    return x


def replicas_action(ctx: EnvContext, desired: Mapping[str, int],
                    targets: Mapping[str, int | None], placement: str) -> np.ndarray:  # fmt: skip
    """The `replicas` preset action that moves each pool towards `targets[pool]` by the rung
    (`EnvContext.rungs`, default -2..+2 pods) in the gap's direction nearest the gap, the
    smaller move on a tie (None or a pool not in `desired`: no move), and sets `placement`."""
    idx = []
    for pool in ctx.layout:
        want = targets.get(pool)
        gap = 0 if want is None or pool not in desired else want - desired[pool]
        ways = [i for i, r in enumerate(ctx.rungs) if r * gap > 0] or [ctx.rungs.index(0)]
        idx.append(min(ways, key=lambda i: (abs(gap - ctx.rungs[i]), abs(ctx.rungs[i]))))
    return np.array(idx + [ctx.placements.index(placement)], dtype=np.int64)

"""A trained stable-baselines3 PPO model: ``ppo:PATH`` (a ``.zip`` from ``PPO.save``).

Deterministic actions; if normalisation statistics lie next to the model
(``vecnormalize.npz``, written by `kisim train`), they normalise the observations exactly as
in training (`VecNormalize.normalize_obs`). Nothing from the model's folder is unpickled
unless the policy is trusted (``--trust-model``; `agents.policies.model_files` says why).
The model must have been trained on the scenario's observation and action presets
(``env.observation`` / ``env.action``); spaces are checked when the episode starts.
The path is checked when the policy is made, so a missing file ends `kisim eval` before
any run; torch and stable-baselines3 are imported only when an episode starts.

A model trained in the ``min-scale`` preset (it sets the floor of an in-cluster autoscaler,
``env.autoscaler``) runs the same way on any scenario: its ``config.json`` (written beside it
by `kisim train`) names the preset and the autoscaler, and they replace the scenario's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.policies.base import Policy
from agents.policies.model_files import VECNORMALIZE_PKL, load_ppo, stats_beside
from kisim.core.config import Scenario, override
from kisim.core.errors import KisimError
from kisim.core.window import Window

if TYPE_CHECKING:
    from kisim.env.environment import KisimEnv

VECNORMALIZE = VECNORMALIZE_PKL


def model_path(arg: str | None) -> Path:
    if not arg:
        raise KisimError("policy 'ppo' needs a model: ppo:PATH")
    p = Path(arg).expanduser()
    for cand in (p, p.with_name(p.name + ".zip")):
        if cand.is_file():
            return cand
    raise KisimError(f"ppo:{arg}: no such model file")


def steered_autoscaler(model: Path) -> tuple[str, str] | None:
    """(action preset, autoscaler) of a model trained to steer an autoscaler, from the
    ``config.json`` beside it; None for any other model (or one without a readable config)."""
    try:
        env = json.loads((model.parent / "config.json").read_text())["scenario"]["env"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(env, dict) or not env.get("autoscaler"):
        return None
    return str(env["action"]), str(env["autoscaler"])


class PPOPolicy(Policy):
    name = "ppo"
    arg_help = "path of a stable-baselines3 PPO .zip"
    action = None  # the scenario's env.action (what the model was trained with)

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        self.path = model_path(arg)
        self.model: Any = None
        self.vecnorm: Any = None

    def scenario(self, sc: Scenario) -> Scenario:
        trained = steered_autoscaler(self.path)
        if trained is None:
            return sc
        action, autoscaler = trained
        return override(sc, f"ppo:{self.arg}", **{"env.action": action,
                                                   "env.autoscaler": autoscaler})  # fmt: skip

    def attach(self, env: KisimEnv) -> None:
        super().attach(env)
        if self.model is None:
            self._load()
        ms, es = self.model.action_space, env.action_space
        if ms != es:
            raise KisimError(f"ppo:{self.arg}: the model acts in {ms}, the env's "
                             f"'{env.scenario.env.action}' preset is {es}")  # fmt: skip
        if self.model.observation_space.shape != env.observation_space.shape:
            raise KisimError(f"ppo:{self.arg}: the model observes "
                             f"{self.model.observation_space.shape}, "
                             f"the env's '{env.scenario.env.observation}' preset "
                             f"{env.observation_space.shape}")  # fmt: skip

    def _load(self) -> None:
        try:
            import stable_baselines3  # noqa: F401
            import torch
        except ImportError as e:
            raise KisimError(f"ppo:{self.arg}: stable-baselines3 is not installed ({e})") from None
        torch.set_num_threads(1)
        self.vecnorm = stats_beside(self.path, self.trust_model)
        try:
            self.model = load_ppo(self.path, self.trust_model)
        except KisimError:
            raise
        except Exception as e:  # noqa: BLE001 - a corrupt or foreign file is the user's input
            raise KisimError(f"ppo:{self.arg}: cannot load ({type(e).__name__}: {e})") from None

    def act(self, obs: np.ndarray, window: Window | None, t: float) -> Any:
        o = self.vecnorm.normalize_obs(obs) if self.vecnorm is not None else obs
        a, _ = self.model.predict(o, deterministic=True)
        return a

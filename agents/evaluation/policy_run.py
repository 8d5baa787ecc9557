"""How one evaluation run executes: a policy on a scenario, pattern and seed -> a run dir.

Every policy runs through `KisimEnv` (`run_policy`): in-cluster ones (static, hpa)
change the scenario and watch with the ``none`` action preset, env-driven ones
(threshold, oracle, ppo) act in their preset at each step, and inner controllers (kpa)
tick inside the steps at their own period. The env records
the timeline at the scenario's ``window_s`` for all of them (the same grid, whatever
the agent step), the summary comes from `kisim.core.summary.summarize`, and every run also
reports ``episode_reward``: the env's reward summed over the episode, one objective
for all policies.

`TwinEpisode` is picklable (it carries the resolved scenario as JSON and builds
policies from their specs in the worker) so the harness can fan runs out over processes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.policies import Policy, known_policies, make_policy
from kisim.core.backend import Backend
from kisim.core.config import Scenario, resolved_json, with_pattern
from kisim.core.rundir import write_run
from kisim.core.window import Window
from kisim.env.episode import Episode, finish


def check_policies(specs: list[str], trust_model: bool = False) -> None:
    """Unknown policies, bad arguments and missing ``ppo:`` files end the command before any run."""
    for spec in specs:
        make_policy(spec, trust_model)


@dataclass
class PolicyRun:
    episode: Episode
    scenario: Scenario  # as the env ran it (controller, env section, pattern)
    reward: float
    steps: int


def run_policy(policy: Policy | str, sc: Scenario, seed: int, backend: Backend | None = None,
               on_end: Callable[[Backend], None] | None = None,
               on_step: Callable[[Any, Any, float], None] | None = None) -> PolicyRun:  # fmt: skip
    """One episode of `policy` on `sc` (its pattern) with backend seed `seed`.

    `on_end(backend)` runs after the last step, before the env closes the backend (a real
    backend's raw trace is read then); `on_step(obs, action, reward)` sees every step's
    observation before the action and the reward after it (imitation records a teacher so)."""
    from kisim.env.environment import InnerController, KisimEnv

    pol = make_policy(policy) if isinstance(policy, str) else policy
    if backend is not None:
        pol = pol.for_backend(backend.in_cluster_hpa)
    sc = pol.scenario(sc)
    inner = pol if isinstance(pol, InnerController) else None
    env = KisimEnv(sc, backend, action=pol.action, step_s=pol.step_s, record_window_s=sc.window_s,
                   inner=inner)  # fmt: skip
    try:
        obs, info = env.reset(seed=seed)
        pol.reset(env.scenario)
        pol.attach(env)
        windows: list[Window] = []
        w: Window | None = None
        steps = 0
        while True:
            a = pol.act(obs, w, env.state.t if env.state is not None else 0.0)
            before = obs
            obs, r, terminated, truncated, info = env.step(a)
            if on_step is not None:
                on_step(before, a, float(r))
            w = info["window"]
            windows.extend(info["timeline"])
            steps += 1
            if terminated or truncated:
                break
        ep = finish(env.backend, env.scenario, windows)
        if on_end is not None:
            on_end(env.backend)
        return PolicyRun(ep, env.scenario, env.episode_reward, steps)
    finally:
        env.close()


@dataclass(frozen=True)
class TwinEpisode:
    scenario: dict[str, Any]  # resolved scenario JSON
    trust_model: bool = False  # ppo:PATH may unpickle its files (--trust-model)

    def __call__(self, policy: str, pattern: str, seed: int, run_dir: Path) -> None:
        sc = with_pattern(Scenario.model_validate(self.scenario), pattern)
        run = run_policy(make_policy(policy, self.trust_model), sc, seed)
        write_policy_run(run_dir, run, policy, pattern, seed, "twin")


def write_policy_run(run_dir: Path, run: PolicyRun, policy: str, pattern: str, seed: int,
                     backend: str, extra: dict[str, Any] | None = None) -> None:  # fmt: skip
    """One evaluation run's directory: the scenario as run, Windows, summary, histogram."""
    meta = {"scenario": run.scenario.name, "pattern": pattern, "policy": policy, "seed": seed,
            "backend": backend}  # fmt: skip
    summary = {**meta, **run.episode.summary, "episode_reward": run.reward, **(extra or {})}
    write_run(run_dir, {**json.loads(resolved_json(run.scenario)), **meta}, run.episode.windows,
              summary, run.episode.latency_hist)  # fmt: skip


__all__ = ["TwinEpisode", "check_policies", "known_policies", "run_policy", "PolicyRun",
           "write_policy_run"]

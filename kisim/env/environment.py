"""`KisimEnv`: one Gymnasium environment over any `Backend` (twin or cluster).

One agent step = one ``backend.advance(env.step_s)`` (30 s by default); the episode
is truncated (a time limit, not a terminal state) at ``scenario.duration_s``.
Observation, action and reward are presets chosen by name in ``scenario.env``
(`kisim.env.observation`, `kisim.env.actions`, `kisim.env.rewards`) and never look inside the
backend: everything comes from the `Window` the backend reports.

Seeding (docs/environment.md): only through ``reset(seed=...)`` and ``self.np_random``.
``reset(seed=s)`` runs the backend with seed ``s`` itself, so ``env.reset(seed=s)``
and ``kisim simulate --seed s`` (and every policy of ``kisim eval`` with seed s) share
common random numbers; a ``reset()`` without a seed draws the next backend seed as
``self.np_random.integers(2**31 - 1)``. With several ``patterns`` the episode's
pattern is drawn from ``self.np_random`` too (``options={"pattern": name}`` picks one).

``record_window_s`` (used by the evaluation harness) and ``inner`` (a controller that
ticks inside a step, e.g. the Knative-style KPA every 2 s) make the env advance the
backend in pieces aligned to every grid: a run directory's timeline has the
scenario's ``window_s`` rows for every policy, an inner controller sees its own tick
Windows, and the agent still sees exactly the Window of its whole step (counts
summed, percentiles recomputed from the requests; the twin is invariant to how its
time is chunked, which the tests check).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from kisim.core.backend import Action, Applied, Backend
from kisim.core.backends import make_backend
from kisim.core.config import Scenario, load_scenario, override, scenario_fingerprint, with_pattern
from kisim.core.errors import ConfigError, KisimError
from kisim.core.paths import default_scenario
from kisim.core.patterns import Pattern, make_pattern
from kisim.core.platform import PlatformControl
from kisim.core.window import Window
from kisim.env.actions import ACTIONS
from kisim.env.autoscalers import Autoscaler, make_autoscaler
from kisim.env.chunker import EPS, Chunker, OnClose
from kisim.env.context import EnvContext, EnvState, build_context, mean_demand
from kisim.env.observation import OBSERVATIONS
from kisim.env.platform_view import PlatformMove, PlatformView
from kisim.env.presets import check_presets
from kisim.env.rewards import REWARDS, Reference
from kisim.env.static_reference import StaticReferences

DEFAULT_SCENARIO = default_scenario()
ENV_ID = "kisim/Autoscale-v0"


def default_backend() -> Backend:
    """The twin (its `apply` rolls out pod-template changes for the `resources` preset)."""
    return make_backend("twin")


@runtime_checkable
class InnerController(Protocol):
    """A controller that acts every `period_s` inside an agent step (in-cluster style)."""

    period_s: float

    def tick(self, window: Window, t: float) -> Action | None:
        """Called with the Window of each tick; the returned action is applied at once."""


class KisimEnv(gym.Env[np.ndarray, Any]):
    """Autoscaling and placement of a Triton service as a Gymnasium environment.

    Args:
        scenario: a `Scenario`, a path to a scenario YAML, or None for the default.
        backend: what to drive; None = the twin (`default_backend()`).
        patterns: load pattern names to draw from at each reset (training on several);
            None = the scenario's own pattern.
        step_s, observation, action, reward, reward_weights, reward_baseline: override
            the scenario's ``env`` section (validated once, here).
        record_window_s: also collect timeline Windows of this length in
            ``info["timeline"]`` (evaluation); None = one backend call per step.
        inner: a controller ticking inside each step (its actions are applied at once
            and reported in ``info["clamped"]``/``info["inner_applied"]``). A preset that
            steers an autoscaler (`min-scale`) makes ``env.autoscaler`` the inner controller.
        references: the cache of static runs for ``reward_baseline: static``; pass one
            to share it between envs (None: this env's own).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        scenario: Scenario | str | Path | None = None,
        backend: Backend | None = None,
        *,
        patterns: Sequence[str] | None = None,
        step_s: float | None = None,
        observation: str | None = None,
        action: str | None = None,
        reward: str | None = None,
        reward_weights: dict[str, float] | None = None,
        reward_baseline: str | None = None,
        record_window_s: float | None = None,
        inner: InnerController | None = None,
        references: StaticReferences | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise KisimError(f"render_mode '{render_mode}': KisimEnv does not render")
        sc = _load(scenario)
        given = {"step_s": step_s, "observation": observation, "action": action,
                 "reward": reward, "reward_weights": reward_weights,
                 "reward_baseline": reward_baseline}  # fmt: skip
        dotted = {f"env.{k}": v for k, v in given.items() if v is not None}
        if dotted:
            sc = override(sc, "KisimEnv(...)", **dotted)
        check_presets(sc)
        need = ACTIONS[sc.env.action].controller
        if need is not None and sc.controller.name != need:
            sc = override(sc, f"env.action {sc.env.action}", **{"controller.name": need})
        if getattr(ACTIONS[sc.env.action], "owns_models", False) and sc.platform is not None:
            # the agent is the models' autoscaler: their HPAs would fight it
            sc = override(sc, f"env.action {sc.env.action}", **{
                f"platform.models.{m}.hpa_target": None for m in sc.platform.models})
        self.scenario = sc
        names = list(patterns) if patterns else [sc.traffic.pattern.name]
        if not names:
            raise ConfigError("patterns: empty list")
        self.patterns = names
        self._scenarios = {n: sc if n == sc.traffic.pattern.name else with_pattern(sc, n)
                           for n in names}  # fmt: skip
        self.ctx: EnvContext = build_context(sc)
        self._obs = OBSERVATIONS[sc.env.observation](self.ctx)
        self._act = ACTIONS[sc.env.action](self.ctx)
        # one reward per pattern: `cost_requests` counts misses against an average step of
        # the episode's own pattern, not of the scenario's
        self._rewards = {n: REWARDS[sc.env.reward](
            self.ctx if s is sc else replace(self.ctx, mean_demand_rps=mean_demand(s)),
            sc.env.reward_weights) for n, s in self._scenarios.items()}  # fmt: skip
        self._rew = self._rewards[names[0]]
        self.observation_space = self._obs.space
        self.action_space = self._act.space
        self.backend: Backend = backend if backend is not None else default_backend()
        self.record_window_s = record_window_s
        self.autoscaler: Autoscaler | None = None
        if ACTIONS[sc.env.action].needs_autoscaler:
            if inner is not None:
                raise KisimError(f"env.action {sc.env.action}: the env runs env.autoscaler "
                                 "inside each step; a policy's own inner controller cannot "
                                 "run beside it")  # fmt: skip
            assert sc.env.autoscaler is not None  # check_presets
            inner = self.autoscaler = make_autoscaler(sc.env.autoscaler, self._floors,
                                                      sc.source or sc.name)  # fmt: skip
        self.inner = inner
        self.references = references if references is not None else StaticReferences()
        self._inner_applied: list[Applied] = []
        self._static_sc: dict[str, Scenario] = {}
        self._fingerprint: dict[str, str] = {}
        if sc.env.reward_baseline == "static":
            for n, s in self._scenarios.items():
                ref = override(s, "reward_baseline static", **{"controller.name": "static"})
                self._static_sc[n] = ref
                self._fingerprint[n] = scenario_fingerprint(ref)
        self._st: EnvState | None = None
        self._pattern: Pattern | None = None
        self._refs: list[Reference] | None = None
        self._rec: Chunker | None = None
        self.pattern_name = names[0]
        self.twin_seed: int | None = None
        self.episode_reward = 0.0

    # ------------------------------------------------------------------ gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        name = options.get("pattern")
        if name is None:
            name = self.patterns[0] if len(self.patterns) == 1 else \
                self.patterns[int(self.np_random.integers(len(self.patterns)))]
        elif name not in self._scenarios:
            known = ", ".join(self.patterns)
            raise KisimError(f"pattern '{name}' is not one of this env's ({known})")
        if options.get("twin_seed") is not None:
            ts = int(options["twin_seed"])
        elif seed is not None:
            ts = int(seed)
        else:
            ts = int(self.np_random.integers(2**31 - 1))
        sc, self._rew = self._scenarios[name], self._rewards[name]
        self.pattern_name, self.twin_seed = name, ts
        self.backend.reset(sc, ts)
        if self.autoscaler is not None:
            self.autoscaler.reset(sc)
        spec = sc.traffic.pattern
        self._pattern = make_pattern(spec.name, spec.params, ts)
        self._shape_tick = sc.traffic.shape_tick_s
        self._st = st = EnvState.initial(self.ctx)
        if self.ctx.platform is not None:
            if not isinstance(self.backend, PlatformControl):
                raise KisimError(f"scenario {sc.name} has a platform section; backend "
                                 f"{type(self.backend).__name__} cannot report it")  # fmt: skip
            st.platform = PlatformView.first(self.ctx.platform, self.backend.platform_state())
        self._refs = self.references.get(self._static_sc[name], self._fingerprint[name], ts,
                                         self.ctx) if name in self._static_sc else None  # fmt: skip
        grids: list[tuple[float, OnClose | None]] = []
        if self.record_window_s:
            grids.append((self.record_window_s, None))
        if self.inner is not None:
            grids.append((self.inner.period_s, self._tick))
        self._rec = Chunker(self.backend, grids) if grids else None
        self._inner_applied = []
        self.episode_reward = 0.0
        info = {"window": None, "t": 0.0, "pattern": name, "twin_seed": ts}
        return self._obs.observe(None, st), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        st = self._st
        if st is None:
            raise KisimError("step() before reset()")
        ctx = self.ctx
        dt = ctx.duration_s - st.t
        if dt <= EPS:
            raise KisimError("the episode is over (truncated): call reset()")
        prev_desired = dict(st.desired)
        prev_placement = st.placement
        act, clamped, changes = self._act.decode(action, st)
        applied: Applied | None = None
        if isinstance(act, PlatformMove):
            b = self.backend
            assert isinstance(b, PlatformControl)
            b.platform_control(act.replicas or None, act.pool_floor or None, act.hold or None,
                               act.gpu or None)
        elif act is not None:
            applied = self.backend.apply(act)
            if applied.clamped:
                clamped = {**clamped, **applied.clamped}
        if ctx.step_s < dt:
            dt = ctx.step_s
        if self._rec is not None:
            w = self._rec.advance(dt)
            for ap in self._inner_applied:
                if ap.clamped:
                    clamped = {**clamped, **ap.clamped}
        else:
            w = self.backend.advance(dt)
        # the agent-side view follows what the cluster reports (an HPA may have moved it)
        for pool, before in prev_desired.items():
            now = w.pool(pool).desired
            changes += abs(now - before)
            st.desired[pool] = now
        if w.placement != prev_placement:
            changes += 1
        st.placement = w.placement
        st.rates.append(w.offered / w.duration if w.duration > 0 else 0.0)
        if len(st.rates) > ctx.history:
            del st.rates[0]
        st.t = w.t_end
        st.steps += 1
        if st.platform is not None:
            b = self.backend
            assert isinstance(b, PlatformControl)
            st.platform = st.platform.next(b.platform_state(), w.duration)
        reward, terms = self._rew(w, self._reference(w, st.steps - 1), changes, st)
        self.episode_reward += reward
        truncated = st.t >= ctx.duration_s - EPS
        info: dict[str, Any] = {"window": w, "applied": applied, "clamped": clamped,
                                "reward_terms": terms, "t": st.t}  # fmt: skip
        if self._rec is not None:
            if self.record_window_s:
                info["timeline"] = self._rec.take(0, final=truncated)
            if self.inner is not None:
                info["inner_applied"], self._inner_applied = self._inner_applied, []
        return self._obs.observe(w, st), float(reward), False, truncated, info

    def close(self) -> None:
        self.backend.close()

    # ------------------------------------------------------------------ helpers

    @property
    def state(self) -> EnvState | None:
        """The agent-side view (desired replicas, placement, templates, HPA target)."""
        return self._st

    def hold(self) -> Any:
        """The action that changes nothing in the current state."""
        assert self._st is not None, "reset() first"
        return self._act.hold(self._st)

    def demand_rps(self, t0: float, t1: float) -> float:
        """Mean demand of the users over [t0, t1): pattern level x req/s per unit level."""
        pat, tick = self._pattern, self._shape_tick
        assert pat is not None
        k0, k1 = math.ceil(t0 / tick - EPS), math.ceil(t1 / tick - EPS)
        if k1 <= k0:
            return pat.level(t0) * self.ctx.demand_per_level
        total = 0.0
        for k in range(k0, k1):
            total += pat.level(k * tick)
        return total / (k1 - k0) * self.ctx.demand_per_level

    def _floors(self, t: float) -> dict[str, int]:
        assert self._st is not None
        return self._st.floors_at(t)

    def _tick(self, w: Window) -> None:
        assert self.inner is not None
        act = self.inner.tick(w, w.t_end)
        if act is not None:
            self._inner_applied.append(self.backend.apply(act))

    def _reference(self, w: Window, i: int) -> Reference:
        refs = self._refs
        if refs is not None and i < len(refs):
            r = refs[i]
            tp = r.throughput_rps if r.throughput_rps > 0 else self.demand_rps(w.t_start, w.t_end)
            return Reference(r.p95_ms, tp, r.gpu_util)
        return Reference(self.ctx.slo_ms, self.demand_rps(w.t_start, w.t_end), 0.0)


# --------------------------------------------------------------------------- helpers


def _load(scenario: Scenario | str | Path | None) -> Scenario:
    if scenario is None:
        return load_scenario(DEFAULT_SCENARIO)
    if isinstance(scenario, Scenario):
        return scenario
    return load_scenario(scenario)


def make_default(**kwargs: Any) -> KisimEnv:
    """Entry point of ``kisim/Autoscale-v0``: the twin and the default scenario."""
    return KisimEnv(kwargs.pop("scenario", None), **kwargs)


__all__ = ["KisimEnv", "InnerController", "ENV_ID", "DEFAULT_SCENARIO", "default_backend",
           "make_default"]  # fmt: skip

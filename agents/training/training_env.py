"""The environments PPO trains on: `KisimEnv` plus a pattern schedule, training seeds and
domain randomisation, vectorised for stable-baselines3.

Nothing here changes `KisimEnv`; it is driven through its public hooks:

* **Pattern schedule** (`TrainingEnv`): ``rotate`` gives env ``i`` of ``n`` the patterns
  ``i, i + n, i + 2n, ...`` (mod the list), so every rollout holds the patterns in equal
  shares; ``sample`` draws one uniformly per episode. The choice goes to
  ``KisimEnv.reset(options={"pattern": ...})``.
* **Seeds**: training episodes run twin seeds drawn from ``[TRAIN_SEED_MIN, 2**31 - 1)``,
  disjoint from the held-out evaluation seeds (`EVAL_SEED_BASE` + k) and from the seeds
  ``kisim eval`` uses (0, 1, 2, ...), so no evaluation ever replays a training episode.
* **Domain randomisation** (`RandomizedBackend`): a `Backend` wrapper that, at each
  ``reset(scenario, seed)``, scales the calibrated service times, start-up delays and the
  Prometheus scrape interval by factors drawn from the configured ranges (log-uniform),
  deterministically from the episode's twin seed. The agent's observation and reward
  keep the nominal scenario's constants: it never sees the factors, as on a cluster.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from kisim.core.backend import Action, Applied, Backend, PodView
from kisim.core.config import Scenario
from kisim.core.hpa import PodSample
from kisim.core.sketch import LatencySketch
from kisim.core.window import Window

TRAIN_SEED_MIN = 1_000_000
EVAL_SEED_BASE = 100_000
SCHEDULES = ("rotate", "sample")
_DR_SALT = 0x6B6973  # "kis": keeps the DR stream apart from the twin's own streams


@dataclass(frozen=True)
class Ranges:
    """Multiplicative ranges [lo, hi] of the randomised calibration (1 = nominal)."""

    service_time: tuple[float, float] = (1.0, 1.0)
    startup: tuple[float, float] = (1.0, 1.0)
    scrape_interval: tuple[float, float] = (1.0, 1.0)
    faults_per_hour: float = 0.0  # > 0: random faults at this rate (`with_random_faults`)

    @property
    def active(self) -> bool:
        return self.faults_per_hour > 0 or any(
            r != (1.0, 1.0) for r in (self.service_time, self.startup, self.scrape_interval))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    if lo == hi:
        return lo
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def draw_factors(ranges: Ranges, seed: int) -> dict[str, float]:
    """The episode's factors: a pure function of the twin seed (reproducible, resumable)."""
    rng = np.random.default_rng([_DR_SALT, int(seed)])
    return {
        "service_time": _log_uniform(rng, *ranges.service_time),
        "startup": _log_uniform(rng, *ranges.startup),
        "scrape_interval": _log_uniform(rng, *ranges.scrape_interval),
    }


def perturb(sc: Scenario, f: dict[str, float]) -> Scenario:
    """`sc` with service times, start-up delays and the scrape interval scaled by `f`.

    Built with ``model_copy`` (no re-validation: the factors are positive, so every
    validated bound still holds) because it runs once per training episode.
    """
    devices = {}
    for name, d in sc.calibration.devices.items():
        svc = d.service
        k = f["service_time"]
        svc = svc.model_copy(update={
            "base_ms": svc.base_ms * k, "per_item_ms": svc.per_item_ms * k,
            "table_ms": {b: t * k for b, t in svc.table_ms.items()} if svc.table_ms else None,
        })  # fmt: skip
        s = d.startup
        u = f["startup"]
        st = s.model_copy(update={"container_start_s": s.container_start_s * u,
                                  "model_load_s": s.model_load_s * u})  # fmt: skip
        devices[name] = d.model_copy(update={"service": svc, "startup": st})
    cal = sc.calibration.model_copy(update={"devices": devices})
    m = sc.metrics
    metrics = m.model_copy(update={"scrape_interval_s": m.scrape_interval_s * f["scrape_interval"]})
    return sc.model_copy(update={"calibration": cal, "metrics": metrics})


def with_random_faults(sc: Scenario, per_hour: float) -> Scenario:
    """`sc` with random faults at `per_hour` (kinds and durations from its `faults.random`):
    the twin draws each episode's events from the episode seed (`kisim.core.faults`)."""
    rnd = sc.faults.random.model_copy(update={"per_hour": per_hour})
    return sc.model_copy(update={"faults": sc.faults.model_copy(update={"random": rnd})})


class RandomizedBackend:
    """A `Backend` that runs each episode on a perturbed copy of the scenario (see module doc)."""

    def __init__(self, inner: Backend, ranges: Ranges) -> None:
        self.inner = inner
        self.ranges = ranges
        self.factors: dict[str, float] = {}

    def reset(self, scenario: Scenario, seed: int) -> None:
        self.factors = draw_factors(self.ranges, seed)
        sc = perturb(scenario, self.factors)
        if self.ranges.faults_per_hour > 0:
            sc = with_random_faults(sc, self.ranges.faults_per_hour)
        self.inner.reset(sc, seed)

    def apply(self, action: Action) -> Applied:
        return self.inner.apply(action)

    def advance(self, dt: float) -> Window:
        return self.inner.advance(dt)

    @property
    def now(self) -> float:
        return self.inner.now

    def close(self) -> None:
        self.inner.close()

    def latencies(self) -> np.ndarray | LatencySketch:
        return self.inner.latencies()

    def waits(self) -> np.ndarray | LatencySketch:
        return self.inner.waits()

    @property
    def batches(self) -> int:
        return self.inner.batches

    @property
    def batch_items(self) -> int:
        return self.inner.batch_items

    @property
    def in_cluster_hpa(self) -> bool:
        return self.inner.in_cluster_hpa

    def pod_metric(self, pool: str, metric: str,
                   range_s: float) -> tuple[list[PodSample], dict[str, float]]:  # fmt: skip
        return self.inner.pod_metric(pool, metric, range_s)

    def pod_views(self, pool: str, window_s: float) -> list[PodView]:
        return self.inner.pod_views(pool, window_s)


class TrainingEnv(gym.Wrapper):
    """One training env: pattern schedule and training-range twin seeds (module doc).

    Seeded only through ``reset(seed=...)`` (the first reset SB3 makes); its generator
    then draws the patterns (``sample``) and every episode's twin seed.
    """

    def __init__(self, env: gym.Env, patterns: Sequence[str], schedule: str = "rotate",
                 index: int = 0, n_envs: int = 1) -> None:  # fmt: skip
        super().__init__(env)
        if schedule not in SCHEDULES:
            from kisim.core.errors import ConfigError

            raise ConfigError(f"patterns schedule '{schedule}' (known: {', '.join(SCHEDULES)})")
        self.patterns = list(patterns)
        self.schedule = schedule
        self.index, self.n_envs = index, n_envs
        self.episodes = 0
        self._rng = np.random.default_rng(index)
        self._restored = False  # set_state() was called: the next seed must not reseed

    def next_pattern(self) -> str:
        n = len(self.patterns)
        if self.schedule == "rotate":
            return self.patterns[(self.index + self.episodes * self.n_envs) % n]
        return self.patterns[int(self._rng.integers(n))]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if seed is not None and not self._restored:
            self._rng = np.random.default_rng([int(seed), self.index])
        self._restored = False
        opts = dict(options or {})
        opts.setdefault("pattern", self.next_pattern())
        opts.setdefault("twin_seed", int(self._rng.integers(TRAIN_SEED_MIN, 2**31 - 1)))
        self.episodes += 1
        return self.env.reset(seed=seed, options=opts)

    def get_state(self) -> dict[str, Any]:
        """What a checkpoint needs to continue the same episode stream."""
        return {"episodes": self.episodes, "rng": self._rng.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        self.episodes = int(state["episodes"])
        self._rng.bit_generator.state = state["rng"]
        self._restored = True


def env_factory(scenario: Scenario, patterns: Sequence[str], schedule: str, index: int,
                n_envs: int, ranges: Ranges) -> Callable[[], gym.Env]:  # fmt: skip
    """A picklable-enough thunk for DummyVecEnv/SubprocVecEnv (scenario passed as JSON)."""
    data = scenario.model_dump(mode="json")

    def make() -> gym.Env:
        from kisim.env.environment import KisimEnv, default_backend

        sc = Scenario.model_validate(data)
        backend: Backend = default_backend()
        if ranges.active:
            backend = RandomizedBackend(backend, ranges)
        env = KisimEnv(sc, backend, patterns=list(patterns))
        return TrainingEnv(env, patterns, schedule, index, n_envs)

    return make


def check_same_spaces(scenario: Scenario, others: Sequence[Scenario]) -> None:
    """A generalist's scenarios must share the observation and action spaces (ConfigError)."""
    from kisim.core.errors import ConfigError
    from kisim.env.environment import KisimEnv

    ref = KisimEnv(scenario)
    for sc in others:
        e = KisimEnv(sc)
        if e.observation_space != ref.observation_space or e.action_space != ref.action_space:
            raise ConfigError(
                f"envs.also_scenarios: {sc.name} has observation {e.observation_space.shape} / "
                f"action {e.action_space} but {scenario.name} has "
                f"{ref.observation_space.shape} / {ref.action_space}: a generalist needs equal "
                "spaces (the same pools and placements)")  # fmt: skip


def fresh_info_dummy_vec_env(fns: Sequence[Callable[[], gym.Env]]) -> Any:
    """SB3's `DummyVecEnv` without the deep copy of every step's infos.

    SB3 deep-copies the infos because an env may reuse its info dict; `KisimEnv.step` builds a
    new one every step (its Window and Applied are frozen), so a shallow copy of the list is
    the same. The deep copy of a Window per env step cost ~2 % of a flash-crowd step
    (docs/training.md, "Where a step's time goes")."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    class FreshInfoDummyVecEnv(DummyVecEnv):
        def step_wait(self) -> Any:
            for i in range(self.num_envs):
                obs, self.buf_rews[i], term, trunc, self.buf_infos[i] = self.envs[i].step(
                    self.actions[i])  # fmt: skip
                self.buf_dones[i] = term or trunc
                self.buf_infos[i]["TimeLimit.truncated"] = trunc and not term
                if self.buf_dones[i]:
                    self.buf_infos[i]["terminal_observation"] = obs
                    obs, self.reset_infos[i] = self.envs[i].reset()
                self._save_obs(i, obs)
            return (self._obs_from_buf(), np.copy(self.buf_rews), np.copy(self.buf_dones),
                    list(self.buf_infos))  # fmt: skip

    return FreshInfoDummyVecEnv(list(fns))


def make_vec_env(scenario: Scenario, patterns: Sequence[str], n_envs: int, seed: int,
                 schedule: str = "rotate", ranges: Ranges | None = None,
                 vec: str = "dummy", also: Sequence[Scenario] = ()) -> Any:  # fmt: skip
    """`n_envs` training envs in a `DummyVecEnv` (default) or `SubprocVecEnv`, in a `VecMonitor`.

    With `also` (a generalist), env i runs scenario i mod k of ``[scenario, *also]``; the
    extra scenarios run their own load pattern."""
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecMonitor

    r = ranges or Ranges()
    if also:
        check_same_spaces(scenario, also)
    scs = [scenario, *also]
    pats = [list(patterns)] + [[sc.traffic.pattern.name] for sc in also]
    k = len(scs)
    if also and n_envs < k:
        from kisim.core.errors import ConfigError

        raise ConfigError(f"envs.n_envs {n_envs}: fewer than the generalist's {k} scenarios")
    fns = [env_factory(scs[i % k], pats[i % k], schedule, i, n_envs, r) for i in range(n_envs)]
    if vec == "subproc":
        venv = SubprocVecEnv(fns, start_method="fork")
    elif vec == "dummy":
        venv = fresh_info_dummy_vec_env(fns)
    else:
        from kisim.core.errors import ConfigError

        raise ConfigError(f"vec_env '{vec}' (known: dummy, subproc)")
    venv.seed(seed)
    return VecMonitor(venv)

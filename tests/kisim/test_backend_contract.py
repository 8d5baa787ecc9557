"""A third backend written only against `kisim.core.backend.Backend` runs everywhere the twin
and the cluster do: the env (and Gymnasium's checker), an episode, and the evaluation harness
with an in-env policy, a rule-based one and the HPA run from outside on its `pod_views`.

`FluidBackend` is a toy fluid model (no queueing detail): each ready replica serves a fixed
rate, closed-loop users offer `users / (think + latency)`; it knows nothing of the twin.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from agents.evaluation.harness import evaluate
from agents.evaluation.policy_run import run_policy, write_policy_run
from kisim.core.backend import Action, Applied, Backend, PodView
from kisim.core.config import Scenario, load_scenario, override, with_pattern
from kisim.core.errors import BackendError
from kisim.core.paths import default_scenario
from kisim.core.patterns import make_pattern
from kisim.core.rundir import read_csv
from kisim.core.window import Latencies, PoolReplicas, Utilisation, Window, percentiles_ms
from kisim.env.environment import KisimEnv
from kisim.env.episode import run_windows

RATE = {"gpu": 150.0, "cpu": 25.0}  # req/s one replica serves, by device kind


class FluidBackend:
    """The smallest backend that honours the protocol; deterministic per seed."""

    def __init__(self) -> None:
        self.sc: Scenario | None = None
        self._now = 0.0
        self.lat: list[np.ndarray] = []
        self.batches = self.batch_items = 0

    def reset(self, scenario: Scenario, seed: int) -> None:
        self.sc, self._now = scenario, 0.0
        self.rng = np.random.default_rng(seed)
        self.pattern = make_pattern(scenario.traffic.pattern.name,
                                    scenario.traffic.pattern.params, seed)  # fmt: skip
        self.replicas = {p: c.replicas for p, c in scenario.pools.items()}
        self.lat = []
        self.batches = self.batch_items = 0

    def apply(self, action: Action) -> Applied:
        assert self.sc is not None
        for pool, s in action.pools.items():
            if pool in self.replicas and s.replicas is not None:
                cfg = self.sc.pools[pool]
                self.replicas[pool] = min(max(s.replicas, cfg.min_replicas), cfg.max_replicas)
        return Applied(replicas=dict(self.replicas), clamped={})

    def _capacity(self) -> float:
        assert self.sc is not None
        cal = self.sc.calibration.devices
        return sum(n * RATE[cal[self.sc.pools[p].device].kind] for p, n in self.replicas.items())

    def advance(self, dt: float) -> Window:
        assert self.sc is not None
        t0, t1 = self._now, self._now + dt
        users = self.pattern.level(t1)
        think = sum(self.sc.traffic.wait_time_s) / 2
        cap = max(self._capacity(), 1e-9)
        rate = min(users / (think + 0.03), 0.98 * cap)
        mean_s = 0.02 / (1.0 - rate / cap)
        n = int(rate * dt)
        lat = self.rng.exponential(mean_s, n)
        self.lat.append(lat)
        self.batches += n
        self.batch_items += n
        self._now = t1
        pct = percentiles_ms(lat)
        return Window.measured(
            t_start=t0, t_end=t1, load_level=users, offered=n, served=n, errors=0,
            latency_ms=Latencies(*pct), slow=int(np.sum(lat * 1e3 > self.sc.slo_ms)),
            queue_wait_ms=math.nan, util=Utilisation(rate / cap, 0.3, rate / cap),
            replicas={p: PoolReplicas(k, k, 0) for p, k in self.replicas.items()},
            replica_s={p: k * dt for p, k in self.replicas.items()}, pending_pod_s=0.0,
            queue_length=0, mean_batch_size=1.0, placement="balanced",
        )  # fmt: skip

    @property
    def now(self) -> float:
        return self._now

    def close(self) -> None:
        pass

    def latencies(self) -> np.ndarray:
        return np.concatenate(self.lat) if self.lat else np.empty(0)

    def waits(self) -> np.ndarray:
        return np.empty(0)

    @property
    def in_cluster_hpa(self) -> bool:
        return False

    def pod_metric(self, pool: str, metric: str, range_s: float) -> tuple[list, dict]:
        raise BackendError("fluid backend: no per-pod metrics")

    def pod_views(self, pool: str, window_s: float) -> list[PodView]:
        assert self.sc is not None
        busy = min(1.0, self.batches / max(self._now, 1e-9) / self._capacity())
        req = self.sc.pools[pool].resources.cpu
        return [PodView(f"{pool}-{i}", 0.0, 1.0, False, req, busy * req, self._now, window_s)
                for i in range(self.replicas[pool])]  # fmt: skip


@pytest.fixture(scope="module")
def short() -> Scenario:
    return override(load_scenario(default_scenario()), "test", duration_s=240.0)


def test_it_is_a_backend() -> None:
    assert isinstance(FluidBackend(), Backend)


def test_env_and_checker(short: Scenario) -> None:
    env = KisimEnv(short, FluidBackend())
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    done = False
    while not done:
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and math.isfinite(r)
        done = term or trunc


def test_episode_summary(short: Scenario) -> None:
    ep = run_windows(FluidBackend(), short, seed=3)
    assert ep.summary["served"] == sum(w.served for w in ep.windows) > 0
    assert ep.summary["p95_ms"] > 0 and len(ep.windows) == 16


@pytest.mark.parametrize("policy", ["static", "threshold", "hpa"])
def test_policies_run(short: Scenario, policy: str) -> None:
    run = run_policy(policy, short, 2, backend=FluidBackend())
    assert run.steps > 0 and run.episode.summary["served"] > 0


class FluidEpisode:
    """The harness's episode function over `FluidBackend` (what TwinEpisode is for the twin)."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc

    def __call__(self, policy: str, pattern: str, seed: int, run_dir: Path) -> None:
        run = run_policy(policy, with_pattern(self.sc, pattern), seed, backend=FluidBackend())
        write_policy_run(run_dir, run, policy, pattern, seed, "fluid")


def test_harness(tmp_path: Path, short: Scenario) -> None:
    res = evaluate(["static", "hpa", "threshold"], ["ramp"], [0, 1], tmp_path,
                   FluidEpisode(short), progress=False, figures=False)  # fmt: skip
    assert res.ran == 6 and not res.failed
    rows = read_csv(tmp_path / "summary.csv")
    assert {r["policy"] for r in rows} == {"static", "hpa", "threshold"}

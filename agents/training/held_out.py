"""The held-out episodes of `kisim train`'s periodic evaluation, and who plays them.

Every training pattern x twin seeds `EVAL_SEED_BASE` + 0..n-1 (disjoint from the
training seeds and from `kisim eval`'s 0, 1, 2, ...). The baseline (hpa) plays them
once, exactly as ``kisim eval`` runs it (`agents.evaluation.policy_run.run_policy`), in a worker
process while training starts, cached in ``eval_baseline.json``; the PPO policy plays
them deterministically at every evaluation (`PolicyEvaluator`).
"""

from __future__ import annotations

import copy
import math
import multiprocessing as mp
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.training.policy_divergence import EffectGroups, effect_groups
from agents.training.training_env import EVAL_SEED_BASE
from kisim.core.config import Scenario, scenario_data
from kisim.core.rundir import read_json, write_json
from kisim.core.summary import replica_s_total

Episode = tuple[str, int]  # (pattern, twin seed)


@dataclass
class EpisodeResult:
    reward: float
    slo_violation_rate: float
    replica_s: float


Baseline = list[EpisodeResult] | Callable[[], list[EpisodeResult]]


def eval_episodes(patterns: Sequence[str], per_pattern: int) -> list[Episode]:
    """Held-out episodes: every pattern x seeds EVAL_SEED_BASE + 0..n-1 (pattern-major)."""
    return [(p, EVAL_SEED_BASE + k) for p in patterns for k in range(per_pattern)]


def baseline_results(scenario_json: dict[str, Any], policy: str,
                     episodes: Sequence[Episode]) -> list[EpisodeResult]:  # fmt: skip
    """The baseline policy on the evaluation episodes, via `agents.evaluation.policy_run.run_policy`
    (exactly as ``kisim eval`` runs it). Module-level so it can run in a worker process."""
    from agents.evaluation.policy_run import run_policy
    from kisim.core.config import with_pattern

    sc = Scenario.model_validate(scenario_json)
    out = []
    for pattern, seed in episodes:
        run = run_policy(policy, with_pattern(sc, pattern), seed)
        s = run.episode.summary
        out.append(EpisodeResult(float(run.reward), float(s["slo_violation_rate"]),
                                 replica_s_total(s)))  # fmt: skip
    return out


def cached_baseline(out: Path, sc: Scenario, fingerprint: str, policy: str,
                    episodes: list[Episode],
                    log: Callable[[str], None]) -> tuple[Baseline, Any]:  # fmt: skip
    """Results cached in OUT/eval_baseline.json, or a thunk waiting on a worker process that
    computes them while training starts (and the worker pool, to terminate at the end)."""
    path = out / "eval_baseline.json"
    key = {"policy": policy, "episodes": [list(e) for e in episodes], "fingerprint": fingerprint}
    if path.is_file():
        d = read_json(path)
        if all(d.get(k) == v for k, v in key.items()):
            return [EpisodeResult(**r) for r in d["results"]], None
    data = scenario_data(sc)
    pool = None
    try:
        # the worker ignores Ctrl-C: the parent decides what to save and terminates it
        pool = mp.get_context("fork").Pool(1, initializer=signal.signal,
                                           initargs=(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
        ares = pool.apply_async(baseline_results, (data, policy, episodes))
    except (ValueError, OSError):  # no fork here: compute inline
        ares = None

    def get() -> list[EpisodeResult]:
        t = time.perf_counter()
        res = ares.get() if ares is not None else baseline_results(data, policy, episodes)
        if pool is not None:
            pool.terminate()  # the worker holds a copy of this process's memory
        waited = time.perf_counter() - t
        if waited > 0.5:
            log(f"waited {waited:.1f} s for the {policy} baseline episodes")
        write_json(path, {**key, "results": [r.__dict__ for r in res]})
        return res

    return get, pool


class PolicyEvaluator:
    """Runs a deterministic SB3 policy on fixed episodes of one `KisimEnv`."""

    def __init__(self, scenario: Scenario, patterns: Sequence[str], episodes: Sequence[Episode]):
        from kisim.env.environment import KisimEnv

        self.env = KisimEnv(scenario, patterns=list(patterns))
        self.episodes = list(episodes)
        self.states: list[Any] = []  # the env's agent-side state at each observation (last run)
        self.groups: EffectGroups | None = effect_groups(self.env)

    def run(self, predict: Callable[[np.ndarray], np.ndarray],
            normalize: Callable[[np.ndarray], np.ndarray],
            ) -> tuple[list[EpisodeResult], np.ndarray]:  # fmt: skip
        """Per-episode results and the (normalised) observations the policy acted on."""
        env = self.env
        res: list[EpisodeResult] = []
        seen: list[np.ndarray] = []
        self.states = []
        for pattern, seed in self.episodes:
            obs, _ = env.reset(seed=seed, options={"pattern": pattern})
            bad = answered = 0
            cost = 0.0
            done = False
            while not done:
                o = normalize(obs)
                seen.append(o)
                self.states.append(copy.deepcopy(env.state))
                obs, _, term, trunc, info = env.step(predict(o))
                w = info["window"]
                bad += w.slo_violations
                answered += w.served + w.errors
                cost += w.replica_s_total
                done = term or trunc
            res.append(EpisodeResult(env.episode_reward, bad / answered if answered else math.nan,
                                     cost))  # fmt: skip
        return res, np.asarray(seen, dtype=np.float32)

    def close(self) -> None:
        self.env.close()

"""Is there room to autoscale? The best constant configuration against the clairvoyant oracle.

For a scenario, `headroom` searches the best *constant* configuration - every pool at a fixed
number of pods, one fixed placement (traffic split), no autoscaler - on **training seeds**, then
runs it and the oracle (`oracle:H`, `agents.policies.oracle`) on **evaluation seeds** (common
random numbers), both scored by the scenario's own reward (`env.reward`). A scenario leaves
room for autoscaling when the best constant is clearly worse than the oracle:

    gap = (R_oracle - R_constant) / |R_oracle|      (mean episode rewards over evaluation seeds)

(with the `cost` preset every reward is <= 0 and 0 is a free service that never misses, so
the gap is "how much more the constant loses than the oracle").

The search (`search_constant`): a coarse grid - per pool its counts from min to max replicas
(evenly spaced, ends included: every count when the grid stays within `budget` points, else
as many levels per pool as keep it within), every placement where two or more pools hold pods
(else the split cannot matter) - on the first training seed; then the best `keep` points and
every neighbour of theirs (one pool one pod up or down, or another placement) on all training
seeds; the best mean wins (ties: fewer pods). Policies are
`fixed:POOL=N` (`agents.policies.fixed`) on the scenario with its `routing.placement` set.

The oracle's horizon (`oracle_horizon`) covers the slowest pool's start-up in the slow case
(95th percentile of its lognormal model load) plus two steps of service: the oracle scores a
move followed by holding over the horizon, so a pod whose start-up outlasts the horizon can
never pay for itself in it, and a short horizon makes the oracle refuse to start slow pods
(on a seed whose next pod loads slowly it then never scales at all).
``max(2, ceil(p95 start-up / step_s) + 2)``. It runs in ``plan`` mode (`oracle_spec`).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from agents.evaluation.policy_run import run_policy
from agents.policies.fixed import Fixed
from kisim.core.config import Scenario, override, scenario_data

TRAIN_SEEDS: tuple[int, ...] = (1000, 1001, 1002)
"""Training seeds of the search (disjoint from evaluation seeds 0..n-1 and PPO's 100000+)."""

KEYS = ("cost", "cost_per_million", "slo_attainment", "p95_attainment", "p95_ms")


@dataclass(frozen=True)
class Constant:
    """A constant configuration: pods per pool (every pool listed) and a placement."""

    counts: tuple[tuple[str, int], ...]
    placement: str

    @property
    def spec(self) -> str:
        """The `fixed:` policy spec (pools with pods)."""
        return "fixed:" + ",".join(f"{p}={n}" for p, n in self.counts if n > 0)

    @property
    def label(self) -> str:
        return f"{self.spec} @{self.placement}"

    @property
    def pods(self) -> int:
        return sum(n for _, n in self.counts)


@dataclass
class Score:
    """Mean reward and metrics of one policy over seeds (and every seed's reward)."""

    policy: str
    seeds: list[int]
    rewards: list[float]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(np.mean(self.rewards)) if self.rewards else math.nan


def levels(lo: int, hi: int, max_levels: int) -> list[int]:
    """At most `max_levels` counts from lo to hi, evenly spaced, both ends included."""
    if hi - lo + 1 <= max_levels:
        return list(range(lo, hi + 1))
    return sorted({int(round(x)) for x in np.linspace(lo, hi, max_levels)})


def _placements(sc: Scenario, counts: dict[str, int]) -> list[str]:
    """Every placement where two or more pools hold pods, else the scenario's own."""
    busy = sum(n > 0 for n in counts.values())
    return list(sc.routing.placements) if busy >= 2 else [sc.routing.placement]


def coarse_grid(sc: Scenario, max_levels: int | None = None, budget: int = 120
                ) -> list[Constant]:  # fmt: skip
    """The first rung of the search (module doc): at most `max_levels` counts per pool, or
    (None) the most that keep the grid within `budget` points."""
    if max_levels is None:
        top = max(sc.pools[p].max_replicas - sc.pools[p].min_replicas + 1 for p in sc.pools)
        max_levels = 2
        for lv in range(top, 1, -1):
            if len(coarse_grid(sc, lv)) <= budget:
                max_levels = lv
                break
    pools = list(sc.pool_names)
    axes = [levels(sc.pools[p].min_replicas, sc.pools[p].max_replicas, max_levels) for p in pools]
    out = []
    for combo in itertools.product(*axes):
        counts = dict(zip(pools, combo, strict=True))
        if not any(combo):
            continue
        out += [Constant(tuple(counts.items()), pl) for pl in _placements(sc, counts)]
    return out


def neighbours(sc: Scenario, c: Constant) -> list[Constant]:
    """One pool one pod up or down (within its bounds), or another placement."""
    counts = dict(c.counts)
    out = []
    for p in counts:
        for d in (-1, 1):
            n = counts[p] + d
            if sc.pools[p].min_replicas <= n <= sc.pools[p].max_replicas:
                nc = {**counts, p: n}
                if any(nc.values()):
                    pls = _placements(sc, nc)
                    out.append(Constant(tuple(nc.items()),
                                        c.placement if c.placement in pls else pls[0]))  # fmt: skip
    out += [Constant(c.counts, pl) for pl in _placements(sc, counts) if pl != c.placement]
    return out


# --------------------------------------------------------------------------- runs


def _run(task: tuple[str, str, str | None, int]) -> tuple[float, dict[str, float]]:
    """One episode: (scenario JSON, policy spec, placement or None, seed) -> reward, metrics."""
    text, spec, placement, seed = task
    sc = Scenario.model_validate(json.loads(text))
    if placement is not None:
        sc = override(sc, "headroom", **{"routing.placement": placement})
    pol = Fixed(spec.partition(":")[2]) if spec.startswith("fixed:") else spec
    run = run_policy(pol, sc, seed)
    s = run.episode.summary
    return float(run.reward), {k: float(s[k]) for k in KEYS if k in s}


class Runner:
    """Runs episodes in `jobs` processes (1: in this one)."""

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = max(1, jobs or os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    def map(self, tasks: Sequence[tuple[str, str, str | None, int]]
            ) -> list[tuple[float, dict[str, float]]]:  # fmt: skip
        if self.jobs == 1 or len(tasks) <= 1:
            return [_run(t) for t in tasks]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.jobs)
        return list(self._pool.map(_run, tasks, chunksize=1))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _score(runner: Runner, text: str, items: Sequence[tuple[str, str | None, str]],
           seeds: Sequence[int]) -> list[Score]:  # fmt: skip
    """(label, placement, spec) x seeds -> one Score per item, metrics averaged over seeds."""
    tasks = [(text, spec, pl, s) for _, pl, spec in items for s in seeds]
    res = runner.map(tasks)
    out = []
    for i, (label, _, _) in enumerate(items):
        part = res[i * len(seeds) : (i + 1) * len(seeds)]
        metrics = {k: float(np.mean([m[k] for _, m in part])) for k in KEYS if k in part[0][1]}
        out.append(Score(label, list(seeds), [r for r, _ in part], metrics))
    return out


def search_constant(sc: Scenario, runner: Runner, train_seeds: Sequence[int] = TRAIN_SEEDS,
                    max_levels: int | None = None, keep: int = 4,
                    log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:  # fmt: skip
    """The best constant configuration on training seeds (module doc): the winner, every
    rung's scores, the grid sizes."""
    text = json.dumps(scenario_data(sc))
    grid = coarse_grid(sc, max_levels)
    log(f"  {sc.name}: coarse grid of {len(grid)} constants on seed {train_seeds[0]}")
    first = _score(runner, text, [(c.label, c.placement, c.spec) for c in grid], train_seeds[:1])
    ranked = sorted(zip(grid, first, strict=True), key=lambda cs: (-cs[1].mean, cs[0].pods))
    finalists: dict[str, Constant] = {}
    for c, _ in ranked[:keep]:
        for x in (c, *neighbours(sc, c)):
            finalists.setdefault(x.label, x)
    fl = list(finalists.values())
    log(f"  {sc.name}: {len(fl)} finalists (best {keep} and their neighbours) on seeds "
        f"{', '.join(map(str, train_seeds))}")  # fmt: skip
    second = _score(runner, text, [(c.label, c.placement, c.spec) for c in fl], train_seeds)
    best_c, best_s = min(zip(fl, second, strict=True), key=lambda cs: (-cs[1].mean, cs[0].pods))
    return {"best": best_c, "best_train": best_s, "coarse": len(grid), "finalists": len(fl),
            "rungs": [[asdict(s) for s in first], [asdict(s) for s in second]]}  # fmt: skip


P95_Z = 1.6449  # standard normal 95th percentile


def slow_startup_s(sc: Scenario, pool: str) -> float:
    """A pool's pod start-up in the slow case: schedule + container start + the 95th
    percentile of the lognormal model load (mean `model_load_s`, cv `model_load_cv`) +
    readiness (initial delay + one period)."""
    st = sc.calibration.devices[sc.pools[pool].device].startup
    s2 = math.log(1.0 + st.model_load_cv**2)
    load = st.model_load_s * math.exp(-s2 / 2 + P95_Z * math.sqrt(s2)) if st.model_load_s else 0.0
    return (st.schedule_s + st.container_start_s + load + st.readiness_initial_delay_s
            + st.readiness_period_s)  # fmt: skip


def oracle_horizon(sc: Scenario) -> int:
    """Steps the oracle looks ahead (module doc): the slowest pool's slow-case start-up in
    steps, plus two (at least 2)."""
    slowest = max(slow_startup_s(sc, p) for p in sc.pools)
    return max(2, math.ceil(slowest / sc.env.step_s) + 2)


def oracle_spec(sc: Scenario, horizon: int | None = None) -> str:
    """The oracle the suite is measured against: ``oracle:H:plan`` with H = `oracle_horizon`
    (module doc). ``plan`` (agents.policies.oracle) also tries other traffic splits for the
    best few moves and defers them: scoring only "a move, then hold" over a horizon this long
    orders pods minutes before a surge and drops pods inside one (hetero's first redesign:
    the plain oracle:8 scored -3.15 on seed 0, about what a constant fleet scores)."""
    return f"oracle:{horizon or oracle_horizon(sc)}:plan"


def headroom(sc: Scenario, runner: Runner, eval_seeds: Sequence[int],
             train_seeds: Sequence[int] = TRAIN_SEEDS, horizon: int | None = None,
             max_levels: int | None = None, keep: int = 4,
             log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:  # fmt: skip
    """Search the best constant on training seeds; run it and the oracle on evaluation seeds."""
    found = search_constant(sc, runner, train_seeds, max_levels, keep, log)
    best: Constant = found["best"]
    orc_spec = oracle_spec(sc, horizon)
    text = json.dumps(scenario_data(sc))
    log(f"  {sc.name}: best constant {best.label}; it and {orc_spec} on "
        f"{len(eval_seeds)} evaluation seeds")  # fmt: skip
    items = [(best.label, best.placement, best.spec), (orc_spec, None, orc_spec)]
    const, orc = _score(runner, text, items, eval_seeds)
    gap = (orc.mean - const.mean) / abs(orc.mean) if orc.mean != 0 else math.nan
    diffs = np.asarray(orc.rewards) - np.asarray(const.rewards)
    return {
        "scenario": sc.name, "reward": sc.env.reward, "reward_weights": sc.env.reward_weights,
        "best_constant": best.label, "best_constant_spec": best.spec,
        "placement": best.placement, "train_seeds": list(train_seeds),
        "best_constant_train_reward": found["best_train"].mean,
        "grid": {"coarse": found["coarse"], "finalists": found["finalists"],
                 "max_levels": max_levels, "keep": keep},
        "eval_seeds": list(eval_seeds), "oracle": orc_spec,
        "constant": asdict(const), "oracle_score": asdict(orc),
        "constant_reward": const.mean, "oracle_reward": orc.mean, "gap": gap,
        "oracle_better_on_seeds": int(np.sum(diffs > 0)),
        "search": found["rungs"],
    }  # fmt: skip

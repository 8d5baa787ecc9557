"""The tuned rule baseline of a sim-to-real experiment, tuned on the twin only.

The benchmark tunes an opponent per scenario (agents.benchmark.tuning); here one spec must
serve every workload (a policy is ranked across workloads), so every point of the opponent's
benchmark grid runs on every workload on training seeds 1000.. (disjoint from the
experiment's seeds 0..), and the point with the best mean episode reward over all of them is
chosen (ties: grid order). The runs are the harness's (resumable) under ``OUT/tuning/``;
the outcome is ``OUT/tuning/tuning.json`` and goes into ``sim2real.json``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from agents.benchmark.opponents import OPPONENTS
from agents.benchmark.tuning import OBJECTIVE, train_seeds
from agents.evaluation.harness import evaluate
from agents.evaluation.policy_run import TwinEpisode
from agents.evaluation.report import cells_of
from agents.sim2real.spec import Sim2RealSpec
from kisim.core.config import Scenario, scenario_data, scenario_fingerprint
from kisim.core.errors import KisimError
from kisim.core.rundir import collect_runs, read_json, write_json


def tune_rule(spec: Sim2RealSpec, sc: Scenario, out: Path, jobs: int = 1,
              progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Choose the opponent's grid point on the twin; the result (also OUT/tuning.json)."""
    opp = OPPONENTS.get(spec.tune.opponent)
    if opp is None:
        raise KisimError(f"tune.opponent '{spec.tune.opponent}': not a rule opponent "
                         f"(known: {', '.join(OPPONENTS)})")  # fmt: skip
    grid, seeds = opp.grid(sc), train_seeds(spec.tune.seeds)
    fp = scenario_fingerprint(sc, "tuning")
    path = out / "tuning.json"
    if path.is_file():
        old = read_json(path)
        if old.get("fingerprint") == fp and old.get("grid") == grid and old.get("seeds") == seeds \
                and old.get("workloads") == spec.workloads:  # fmt: skip
            return old  # type: ignore[no-any-return]
    evaluate(grid, spec.workloads, seeds, out, TwinEpisode(scenario_data(sc)), jobs=jobs,
             reference=grid[0], progress=progress, fingerprint=fp, figures=False,
             meta={"tuning": opp.name})  # fmt: skip
    cells = cells_of(collect_runs(out, grid, spec.workloads, seeds))
    scores = []
    for g in grid:
        vals = [r[OBJECTIVE] for w in spec.workloads for r in cells.get((g, w), {}).values()
                if math.isfinite(r.get(OBJECTIVE, math.nan))]  # fmt: skip
        full = len(vals) == len(spec.workloads) * len(seeds)
        scores.append({"spec": g, "n": len(vals),
                       "mean_reward": sum(vals) / len(vals) if full else math.nan})  # fmt: skip
    ok = [s for s in scores if math.isfinite(s["mean_reward"])]
    if not ok:
        raise KisimError(f"tuning {opp.name}: no grid point completed every run (see {out})")
    best = max(ok, key=lambda s: s["mean_reward"])  # max keeps the first of equals: grid order
    res = {"opponent": opp.name, "grid": grid, "seeds": seeds, "workloads": spec.workloads,
           "fingerprint": fp, "scores": scores, "chosen": best["spec"],
           "method": f"every point of the benchmark grid on every workload, training seeds "
                     f"{seeds[0]}-{seeds[-1]}, best mean {OBJECTIVE} in the twin"}  # fmt: skip
    write_json(path, res)
    return res


def with_tuned(policies: list[str], opponent: str, chosen: str) -> list[str]:
    """The policy list with the opponent's entry (``kpa`` or ``kpa:...``) set to `chosen`."""
    out = [chosen if p == opponent or p.startswith(opponent + ":") else p for p in policies]
    if chosen not in out:
        out.append(chosen)
    return list(dict.fromkeys(out))

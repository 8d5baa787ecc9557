"""Calibrating an opponent on training seeds: successive halving over its grid.

The objective is the scenario's reward (``episode_reward``: the env's reward summed over the
episode, the quantity the oracle and PPO maximise), mean over training seeds; every
candidate runs with the same seeds (common random numbers), so candidates are compared on
paired noise. The search (Jamieson & Talwalkar 2016, successive halving, one halving):

1. rung 0: every grid point on the first ``RUNG0_SEEDS`` training seeds;
2. rung 1: the best third (at least ``KEEP_MIN``) on all training seeds;
3. the choice: the best mean reward over all training seeds (ties: grid order).

Training seeds (``TRAIN_SEED0 + i``) are disjoint from evaluation seeds (0 .. runs - 1, runs <
``TRAIN_SEED0``): nothing about the evaluation seeds informs the parameters. The runs are the
evaluation harness's (resumable, parallel), under ``OUT/<scenario>/tuning/<opponent>/``, and
the outcome - the grid, every candidate's mean reward, p95 and SLO violations per rung, the
choice - is ``tuning.json`` there: a rerun with the same grid, seeds and scenario reads it and
runs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.benchmark.episode import ScenarioEpisode
from agents.evaluation.harness import evaluate
from agents.evaluation.report import cells_of
from kisim.core.errors import KisimError
from kisim.core.rundir import collect_runs, read_json, write_json

TRAIN_SEED0 = 1000
RUNG0_SEEDS = 2
KEEP_MIN = 3
OBJECTIVE = "episode_reward"
RESULT = "tuning.json"


def train_seeds(n: int) -> list[int]:
    return [TRAIN_SEED0 + i for i in range(n)]


def _scores(out: Path, specs: Sequence[str], pattern: str, seeds: Sequence[int]
            ) -> list[dict[str, Any]]:  # fmt: skip
    cells = cells_of(collect_runs(out, specs, [pattern], seeds))
    rows = []
    for s in specs:
        runs = cells.get((s, pattern), {})
        vals = {m: [r[m] for r in runs.values() if m in r and math.isfinite(r[m])]
                for m in (OBJECTIVE, "p95_ms", "slo_violation_rate")}  # fmt: skip
        mean = {m: (sum(v) / len(v) if v else math.nan) for m, v in vals.items()}
        rows.append({"spec": s, "n": len(runs), "mean_reward": mean[OBJECTIVE],
                     "p95_ms": mean["p95_ms"], "slo_violation_rate": mean["slo_violation_rate"]})
    return rows


def _best(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows by mean reward, best first (NaN last; stable: grid order breaks ties)."""
    return sorted(rows, key=lambda r: -r["mean_reward"] if math.isfinite(r["mean_reward"])
                  else math.inf)  # fmt: skip


def tune(scenario_json: dict[str, Any], pattern: str, opponent: str, grid: Sequence[str],
         seeds: Sequence[int], out: Path, fingerprint: str, jobs: int = 1,
         progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Search `grid` for `opponent` on training `seeds`; the result (also OUT/tuning.json)."""
    grid, seeds = list(dict.fromkeys(grid)), list(seeds)
    if not grid or not seeds:
        raise KisimError(f"tuning {opponent}: empty grid or no training seeds")
    path = out / RESULT
    if path.is_file():
        old = read_json(path)
        if (old.get("grid") == grid and old.get("seeds") == seeds
                and old.get("fingerprint") == fingerprint):  # fmt: skip
            return old  # type: ignore[no-any-return]
    episode = ScenarioEpisode(scenario_json)
    rungs = []
    r0 = seeds[:RUNG0_SEEDS]
    _run(grid, pattern, r0, out, episode, jobs, progress, fingerprint, opponent)
    rows = _scores(out, grid, pattern, r0)
    rungs.append({"seeds": r0, "candidates": rows})
    keep = [r["spec"] for r in _best(rows)[: max(KEEP_MIN, math.ceil(len(grid) / 3))]]
    if len(seeds) > len(r0):
        keep = [s for s in grid if s in keep]  # grid order
        _run(keep, pattern, seeds, out, episode, jobs, progress, fingerprint, opponent)
        rows = _scores(out, keep, pattern, seeds)
        rungs.append({"seeds": seeds, "candidates": rows})
    ranked = [r for r in _best(rows) if math.isfinite(r["mean_reward"])]
    if not ranked:
        raise KisimError(f"tuning {opponent}: no candidate completed a run (see {out})")
    result = {
        "opponent": opponent, "objective": f"mean {OBJECTIVE} over the training seeds",
        "method": "successive halving: every grid point on the first "
                  f"{len(r0)} training seeds, the best third (>= {KEEP_MIN}) on all",
        "grid": grid, "seeds": seeds, "fingerprint": fingerprint, "rungs": rungs,
        "chosen": ranked[0]["spec"], "chosen_mean_reward": ranked[0]["mean_reward"],
    }  # fmt: skip
    write_json(path, result)
    return result


def _run(specs: list[str], pattern: str, seeds: list[int], out: Path, episode: ScenarioEpisode,
         jobs: int, progress: bool, fingerprint: str, opponent: str) -> None:  # fmt: skip
    # a failed run is recorded by the harness and left out of the candidate's mean
    evaluate(specs, [pattern], seeds, out, episode, jobs=jobs, reference=specs[0],
             progress=progress, fingerprint=fingerprint, figures=False,
             meta={"tuning": opponent})  # fmt: skip

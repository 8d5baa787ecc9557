"""`kisim train --tune`: a Ray Tune random search over PPO hyper-parameters on the twin.

Each trial is a short `agents.training.train.train` run (the base config with the trial's
hyper-parameters and a per-trial step budget) into ``OUT/trials/trial-NNN/``; its best model is
then scored on *tuning* seeds - every training pattern x ``TUNE_SEED_BASE + k`` - disjoint from
the training seeds (>= 1,000,000), from the periodic held-out evaluation that picked the best
model (100,000 + k) and from ``kisim eval``'s seeds (0, 1, ...): the score that ranks the trials
was seen by no choice made inside a trial. The score is the mean episode reward (the env's
reward summed over an episode, what PPO maximises), deterministic actions.

The search space (`SPACE`) is small and documented; the configurations are drawn up front
from ``--seed`` (the same seed gives the same trials, whichever machine runs them) and Ray Tune
runs them - one CPU each, as many at once as the cluster (``--ray``) or ``--jobs`` allow -
records them, and survives a failing trial. OUT after a search::

    trials.csv        one row per trial: its hyper-parameters, score, training reward, steps
    best.yaml         the base training config with the best trial's hyper-parameters
                      (``kisim train --config OUT/best.yaml`` trains it with the full budget)
    tune.json         the space, seeds, budget, the best trial and where the trials are
    search.json       the scenario and tuning seeds the trials were scored on
    trials/trial-NNN/ each trial's training output (model.zip, best_model.zip, progress.csv)
                      and score.json, written last: a rerun with the same OUT skips the
                      finished trials (also after raising --trials) and reruns the others
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agents.training.train_config import TrainConfig
from kisim.core.config import Scenario, resolved_json, scenario_data
from kisim.core.errors import KisimError
from kisim.core.rundir import read_json, write_csv, write_json

TUNE_SEED_BASE = 200_000
"""Tuning seeds: TUNE_SEED_BASE + k per pattern (see the module doc)."""


@dataclass(frozen=True)
class Dimension:
    """One searched hyper-parameter: log-uniform on [low, high], or a choice of values."""

    key: str  # dotted TrainConfig key
    low: float | None = None
    high: float | None = None
    choices: tuple[float, ...] = ()
    why: str = ""

    def draw(self, rng: np.random.Generator) -> float:
        if self.choices:
            return self.choices[int(rng.integers(len(self.choices)))]
        assert self.low is not None and self.high is not None
        return float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))


SPACE: tuple[Dimension, ...] = (
    Dimension("ppo.learning_rate", low=1e-4, high=3e-3,
              why="around SB3's 3e-4 and the tuned default 1e-3 (docs/training.md)"),
    Dimension("ppo.n_steps", choices=(64, 128, 256),
              why="rollout length per env: 128 is the default, 256 SB3's seed plan"),
    Dimension("ppo.ent_coef", choices=(0.0, 0.001, 0.01),
              why="exploration bonus: 0 (SB3's default) to 0.01 (the Atari setting)"),
    Dimension("ppo.gamma", choices=(0.95, 0.99, 0.995),
              why="horizon ~20, ~100, ~200 windows against a 20-window episode"),
)  # fmt: skip


def draw_trials(n: int, seed: int) -> list[dict[str, float]]:
    """`n` configurations from `SPACE`, reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    return [{d.key: d.draw(rng) for d in SPACE} for _ in range(n)]


def trial_config(base: TrainConfig, params: dict[str, float], timesteps: int) -> TrainConfig:
    """The base config with a trial's hyper-parameters and budget; a batch larger than the
    rollout shrinks to it (SB3 needs batch_size <= n_steps x n_envs)."""
    data = base.model_dump(mode="json")
    for k, v in params.items():
        sect, _, name = k.partition(".")
        data[sect][name] = int(v) if name == "n_steps" else v
    data["ppo"]["batch_size"] = min(data["ppo"]["batch_size"],
                                    data["ppo"]["n_steps"] * data["envs"]["n_envs"])  # fmt: skip
    data["budget"]["timesteps"] = timesteps
    data["logging"].update(figure=False, tensorboard=False)
    return TrainConfig.model_validate(data)


def score_model(scenario_json: dict[str, Any], model: Path, patterns: list[str],
                seeds_per_pattern: int) -> float:  # fmt: skip
    """Mean episode reward of `model` on the tuning seeds (deterministic actions)."""
    from agents.evaluation.policy_run import run_policy
    from agents.policies import make_policy
    from kisim.core.config import with_pattern

    sc = Scenario.model_validate(scenario_json)
    policy = make_policy(f"ppo:{model}", True)  # a model this search trained itself
    rewards = [run_policy(policy, with_pattern(sc, p), TUNE_SEED_BASE + k).reward
               for p in patterns for k in range(seeds_per_pattern)]  # fmt: skip
    return float(np.mean(rewards))


def run_trial(config: dict[str, Any]) -> None:
    """One Tune trial (runs in a Ray worker): train, score, report."""
    import torch
    from ray import tune

    from agents.training.train import train

    torch.set_num_threads(1)
    i = int(config["trial"])
    spec = config["spec"]
    sc = Scenario.model_validate(spec["scenario"])
    cfg = TrainConfig.model_validate(spec["configs"][i])
    out = Path(spec["out"]) / "trials" / f"trial-{i:03d}"
    t0 = time.perf_counter()
    res = train(sc, cfg, out, log=lambda _m: None)
    best = out / "best_model.zip"
    score = score_model(spec["scenario"], best if best.is_file() else out / "model.zip",
                        list(cfg.envs.patterns), spec["seeds_per_pattern"])  # fmt: skip
    metrics = {"score": score, "train_best": res.best_mean_reward, "timesteps": res.timesteps,
               "wall_s": round(time.perf_counter() - t0, 3)}  # fmt: skip
    write_json(out / SCORE, {**metrics, "config": spec["configs"][i]})  # marks it finished
    tune.report(metrics)


SEARCH = "search.json"  # what the trials in OUT were scored on
SCORE = "score.json"  # in a trial's folder: written last, it marks the trial finished


def _finished(out: Path, sc: Scenario, configs: list[dict[str, Any]],
              seeds_per_pattern: int) -> dict[int, dict[str, Any]]:  # fmt: skip
    """Resume: the trials already finished in OUT with the same configuration (a rerun with
    more --trials keeps the first ones: the draws are sequential); an unfinished trial's
    folder is removed so it trains again from the start. A search on another scenario or
    other tuning seeds in the same OUT is refused."""
    key = {"scenario": json.loads(resolved_json(sc)), "seeds_per_pattern": seeds_per_pattern,
           "tune_seed_base": TUNE_SEED_BASE}  # fmt: skip
    if (out / SEARCH).is_file():
        if read_json(out / SEARCH) != key:
            raise KisimError(f"{out}: holds a search of another scenario or other tuning "
                             "seeds; use another --out")  # fmt: skip
    elif out.is_dir() and any(out.iterdir()):
        raise KisimError(f"{out}: exists and is not a kisim train --tune folder; use another "
                         "--out")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / SEARCH, key)
    done: dict[int, dict[str, Any]] = {}
    for i, cfg in enumerate(configs):
        d = out / "trials" / f"trial-{i:03d}"
        if (d / SCORE).is_file() and read_json(d / SCORE).get("config") == cfg:
            done[i] = read_json(d / SCORE)
        elif d.exists():
            shutil.rmtree(d)
    return done


@dataclass
class TuneResult:
    out: Path
    best: int  # trial index
    best_score: float
    best_params: dict[str, float]
    rows: list[dict[str, Any]]
    files: dict[str, Path]


def tune_ppo(sc: Scenario, base: TrainConfig, out: Path, trials: int = 8,
             timesteps: int = 20_000, seeds_per_pattern: int = 3, ray: str | None = None,
             jobs: int = 0, progress: bool = True) -> TuneResult:  # fmt: skip
    """Run the search (see the module doc); every trial's row and the best config on disk."""
    if trials < 1 or timesteps < 1 or seeds_per_pattern < 1:
        raise KisimError("--trials, --timesteps and the seeds per pattern must be >= 1")
    from agents.evaluation.ray_executor import LOCAL_RAY, RayExecutor

    params = draw_trials(trials, base.seed)
    configs = [trial_config(base, p, timesteps).model_dump(mode="json") for p in params]
    out = out.resolve()
    grid = _finished(out, sc, configs, seeds_per_pattern)
    todo = [i for i in range(trials) if i not in grid]
    if todo:
        executor = RayExecutor(ray or LOCAL_RAY, jobs)
        ray_mod = executor.connect()
        try:
            grid.update(_run_tune(ray_mod, sc, configs, out, seeds_per_pattern, todo, progress))
        finally:
            executor.close()
    rows = []
    for i, p in enumerate(params):
        m = grid.get(i, {})
        rows.append({"trial": i, **p, "score": float(m.get("score", math.nan)),
                     "train_best": float(m.get("train_best", math.nan)),
                     "timesteps": int(m.get("timesteps", 0)),
                     "status": "ok" if "score" in m else "failed"})  # fmt: skip
    ok = [r for r in rows if math.isfinite(r["score"])]
    if not ok:
        raise KisimError(f"no trial finished (see {out}/ray for the trials' logs)")
    best = max(ok, key=lambda r: (r["score"], -r["trial"]))
    cols = ["trial", *[d.key for d in SPACE], "score", "train_best", "timesteps", "status"]
    write_csv(out / "trials.csv", rows, cols)
    best_cfg = TrainConfig.model_validate({**base.model_dump(mode="json"),
                                           "name": f"{base.name}-tuned"})  # fmt: skip
    best_cfg = trial_config(best_cfg, {k: best[k] for k in (d.key for d in SPACE)},
                            base.budget.timesteps)  # fmt: skip
    data = best_cfg.model_dump(mode="json")
    data["logging"] = base.logging.model_dump(mode="json")  # the base's, not the trials'
    data["description"] = (f"kisim train --tune: trial {best['trial']} of {trials} (score "
                           f"{best['score']:.4g} on the tuning seeds); {base.description}")
    (out / "best.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    write_json(out / "tune.json", {
        "space": [d.__dict__ for d in SPACE], "trials": trials, "timesteps_per_trial": timesteps,
        "draw_seed": base.seed, "tuning_seeds": {"base": TUNE_SEED_BASE,
                                                 "per_pattern": seeds_per_pattern},
        "patterns": list(base.envs.patterns), "best_trial": best["trial"],
        "best_score": best["score"], "executor": executor.name,
    })  # fmt: skip
    return TuneResult(out, int(best["trial"]), float(best["score"]),
                      {d.key: best[d.key] for d in SPACE}, rows,
                      {"trials": out / "trials.csv", "best": out / "best.yaml",
                       "tune": out / "tune.json"})  # fmt: skip


def _run_tune(ray: Any, sc: Scenario, configs: list[dict[str, Any]], out: Path,
              seeds_per_pattern: int, todo: list[int],
              progress: bool) -> dict[int, dict[str, Any]]:  # fmt: skip
    """Tune over the trial indices `todo` (the configurations are fixed up front); the last
    report of each finished trial by index."""
    import os

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's classic reporter: verbose=0 is
    from ray import tune  # silent (the new one prints its tables anyway); our bar shows trials
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="tune", unit="trial", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)  # fmt: skip

    class _Bar(tune.Callback):  # type: ignore[misc]
        def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **kw: Any) -> None:
            bar.update(1)

        def on_trial_error(self, iteration: int, trials: Any, trial: Any, **kw: Any) -> None:
            bar.update(1)
            bar.set_postfix(failed=sum(t.status == "ERROR" for t in trials))

    spec = {"scenario": scenario_data(sc), "configs": configs, "out": str(out),
            "seeds_per_pattern": seeds_per_pattern}  # fmt: skip
    trainable = tune.with_resources(run_trial, {"cpu": 1})
    session = len(list((out / "ray").glob("search-*"))) if (out / "ray").is_dir() else 0
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(todo), "spec": spec},
        tune_config=tune.TuneConfig(metric="score", mode="max"),
        run_config=tune.RunConfig(name=f"search-{session}", storage_path=str(out / "ray"),
                                  verbose=0,
                                  callbacks=[_Bar()],
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )  # fmt: skip
    try:
        results = tuner.fit()
    finally:
        bar.close()
    found: dict[int, dict[str, Any]] = {}
    for r in results:
        if r.error is None and r.metrics and "score" in r.metrics:
            found[int(r.config["trial"])] = dict(r.metrics)
    return found

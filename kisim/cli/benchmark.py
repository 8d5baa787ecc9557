"""`kisim benchmark`: rule baselines tuned on training seeds, every policy on every suite
scenario, the leaderboard (docs/benchmark.md). Thin: the work is `agents.benchmark.run`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agents.benchmark.run import DEFAULT_SUITE, run_benchmark
from agents.evaluation.run import on_sigterm
from kisim.cli.fanout import RayAddress
from kisim.cli.options import AllowLarge, MaxRequests, TrustModel, limits, split_list, split_specs

H_SCEN = "A folder of scenario YAMLs, or comma-separated files."
H_OPP = ("Comma-separated rule opponents to tune (default: all of the scenario's family, with "
         "cron-kpa and cron-keda where its load is scheduled; must include hpa).")
H_EXTRA = ("Comma-separated extra policies evaluated untuned, e.g. ppo:models/gpu-fleet.zip; "
           "SCENARIO=POLICY runs one on that scenario only (a per-scenario PPO model).")


def benchmark_cmd(
    scenarios: Annotated[str, typer.Option(help=H_SCEN)] = str(DEFAULT_SUITE),
    out: Annotated[Path, typer.Option(help="Output directory (resumable).")] = Path(
        "results/benchmark"),
    runs: Annotated[int, typer.Option(help="Evaluation seeds 0..runs-1 per policy.")] = 10,
    train_seeds: Annotated[int, typer.Option(help="Training seeds for tuning.")] = 4,
    jobs: Annotated[int, typer.Option(min=0, help="Parallel processes (0 = one per CPU).")] = 1,
    opponents: Annotated[str | None, typer.Option(help=H_OPP)] = None,
    extra: Annotated[str, typer.Option(help=H_EXTRA)] = "",
    oracle: Annotated[bool, typer.Option("--oracle/--no-oracle", help="The ceiling.")] = True,
    oracle_runs: Annotated[int | None, typer.Option(
        help="The oracle's evaluation seeds 0..N-1 (default --runs): its search costs hundreds "
             "of runs per episode.")] = None,
    duration: Annotated[float | None, typer.Option(help="Seconds per run.")] = None,
    max_requests: MaxRequests = None,
    allow_large: AllowLarge = False,
    trust_model: TrustModel = False,
    ray: RayAddress = None,
) -> None:
    """Tune the rule baselines, evaluate every policy per scenario, write the leaderboard."""
    paths = [Path(p) for p in split_list(scenarios)] or [Path(scenarios)]
    res = on_sigterm(run_benchmark, paths, out, runs, train_seeds, jobs,
                     split_list(opponents) if opponents is not None else None, oracle,
                     split_specs(extra), duration, True, limits(max_requests, allow_large),
                     trust_model, ray, oracle_runs)  # fmt: skip
    for b in res.boards:
        print(f"{b.scenario}: best rule {b.best_rule}")
    print(f"leaderboard: {res.files['md']} (also .html, .tex, .csv)")


def register(app: typer.Typer) -> None:
    app.command("benchmark")(benchmark_cmd)

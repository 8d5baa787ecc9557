"""`kisim bench ...`: speed figures measured against a reference in the same run."""

from __future__ import annotations

from typing import Annotated

import typer

from bench.train_bench import DEFAULT_STEPS  # a light import: torch loads inside bench_train

H_STEPS = "Environment steps of each timed PPO loop."
app = typer.Typer(help="Benchmarks that print their figures.", no_args_is_help=True)


@app.command("twin")
def twin(
    as_json: Annotated[bool, typer.Option("--json", help="Last line: one JSON object.")] = False,
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs of the twin (median).")] = 5,
) -> None:
    """Simulated requests per wall second: the twin vs a naive one-process-per-request
    SimPy model."""
    from bench.twin_bench import bench_twin

    bench_twin(repeats=repeats, json_out=as_json)


@app.command("train")
def train(
    as_json: Annotated[bool, typer.Option("--json", help="Last line: one JSON object.")] = False,
    subproc: Annotated[bool, typer.Option(help="Also measure SubprocVecEnv.")] = False,
    steps: Annotated[int, typer.Option(min=256, help=H_STEPS)] = DEFAULT_STEPS,
) -> None:
    """Steps per second of PPO training on the twin, split into env and learning; the
    env alone (no network), measured in the same run, is the reference."""
    from bench.train_bench import bench_train

    bench_train(steps=steps, subproc=subproc, json_out=as_json)

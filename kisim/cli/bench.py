"""`kisim bench ...`: speed figures measured against a reference in the same run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.train_bench import DEFAULT_STEPS  # a light import: torch loads inside bench_train

H_STEPS = "Environment steps of each timed PPO loop."
H_SCALE_OUT = "Folder for scale.csv, scale.json, scale.png and scale.pdf."
app = typer.Typer(help="Benchmarks that print their figures.", no_args_is_help=True)


@app.command("twin")
def twin(
    as_json: Annotated[bool, typer.Option("--json", help="Last line: one JSON object.")] = False,
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs of the twin (median).")] = 5,
) -> None:
    """Simulated requests per wall second and per CPU second: the twin vs a naive
    one-process-per-request SimPy model, with the load average (targets against both)."""
    from bench.twin_bench import bench_twin

    bench_twin(repeats=repeats, json_out=as_json)


@app.command("train")
def train(
    as_json: Annotated[bool, typer.Option("--json", help="Last line: one JSON object.")] = False,
    subproc: Annotated[bool, typer.Option(help="Also measure SubprocVecEnv.")] = False,
    steps: Annotated[int, typer.Option(min=256, help=H_STEPS)] = DEFAULT_STEPS,
    scenario: Annotated[Path | None, typer.Option(help="Scenario file (default: the default "
                                                  "scenario).")] = None,
    config: Annotated[Path | None, typer.Option(help="Training config (default: "
                                                "configs/train/default.yaml).")] = None,
) -> None:
    """Steps per second of PPO training on the twin, split into env and learning; the
    env alone (no network), measured in the same run, is the reference."""
    from bench.train_bench import bench_train

    bench_train(steps=steps, subproc=subproc, json_out=as_json, scenario=scenario, config=config)


@app.command("scale")
def scale(
    out: Annotated[Path, typer.Option(help=H_SCALE_OUT)] = Path("results/scale"),
    quick: Annotated[bool, typer.Option(help="Stop at 10 M requests (CI, tests).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Last line: one JSON object.")] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seed of every point.")] = 0,
) -> None:
    """Simulated req/s and peak RSS against the number of requests (1 M, 10 M, 100 M) and
    against cluster size (10, 100, 1,000 replicas), each point in its own process, each
    sweep against its smallest point measured in the same run."""
    import json

    from bench.scale_bench import bench_scale, table
    from kisim.core.outputs import check_out_dir

    check_out_dir(out)
    try:
        result = bench_scale(out, quick=quick, seed=seed)
    except RuntimeError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(table(result))
    typer.echo(f"wrote {out}/scale.csv, scale.json, scale.png, scale.pdf")
    if as_json:
        typer.echo(json.dumps(result["verdict"]))

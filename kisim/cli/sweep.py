"""`kisim sweep`: a grid over scenario parameters x policies x seeds in the twin; thin, the work
is `agents.sweep.run`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agents.evaluation.run import on_sigterm
from agents.sweep.run import run_sweep
from kisim.cli.fanout import RayAddress
from kisim.cli.options import AllowLarge, MaxRequests, TrustModel, limits, split_list, split_specs
from kisim.core.errors import KisimError
from kisim.core.paths import default_scenario

DEFAULT_SCENARIO = default_scenario()
H_PARAM = ("A swept scenario key and its values, KEY=V1,V2,... (dotted keys as in the scenario "
           "file, values read as YAML), e.g. pools.gpu.max_replicas=1,2,4; repeat for a grid.")
H_HEAT = "The heat maps' axes: X[,Y], swept keys (default: the first two --param keys)."
H_METRICS = "Comma-separated metrics to heat-map (default: the headline metrics and reward)."




def sweep_cmd(
    param: Annotated[list[str], typer.Option("--param", help=H_PARAM)],
    scenario: Annotated[Path, typer.Option(help="Scenario YAML.")] = DEFAULT_SCENARIO,
    policies: Annotated[str, typer.Option(help="Comma-separated policies.")] = "hpa",
    runs: Annotated[int, typer.Option(help="Seeds 0..runs-1 per point and policy.")] = 3,
    out: Annotated[Path, typer.Option(help="Output directory (resumable).")] = Path(
        "results/sweep"),
    jobs: Annotated[int, typer.Option(min=0, help="Parallel processes (0 = one per CPU).")] = 1,
    ray: RayAddress = None,
    duration: Annotated[float | None, typer.Option(help="Seconds per run.")] = None,
    heatmap: Annotated[str, typer.Option(help=H_HEAT)] = "",
    metrics: Annotated[str | None, typer.Option(help=H_METRICS)] = None,
    max_requests: MaxRequests = None,
    allow_large: AllowLarge = False,
    trust_model: TrustModel = False,
) -> None:
    """Run a grid of scenario parameters x policies x seeds: summary.csv (one row per run)
    and a heat map per metric."""
    res = on_sigterm(run_sweep, scenario, param, split_specs(policies), runs, out, jobs, ray,
                     duration, split_list(heatmap),
                     split_list(metrics) if metrics is not None else None,
                     limits(max_requests, allow_large), True, trust_model)  # fmt: skip
    ev = res.eval
    print(f"{res.points} points x {len(ev.policies)} policies x {len(ev.seeds)} seeds: ran "
          f"{ev.ran}, skipped {ev.skipped} already on disk, {len(ev.failed)} failed, in "
          f"{ev.elapsed_s:.1f} s")  # fmt: skip
    print(f"summary: {res.files['summary']}; heat maps: {out / 'figures'} "
          f"({len(res.figures) // 2} metrics)")  # fmt: skip
    if ev.failed:
        raise KisimError(f"{len(ev.failed)} runs failed (see {out}/eval.json); rerun to retry them")


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_cmd)

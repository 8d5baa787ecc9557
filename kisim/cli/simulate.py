"""`kisim simulate`: one twin episode of a scenario, summary as a table or JSON."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer

from kisim.cli.options import AllowLarge, MaxRequests, limits
from kisim.core.config import resolved_json
from kisim.core.paths import default_scenario
from kisim.core.prepare import prepare, run_meta

DEFAULT_SCENARIO = default_scenario()  # the packaged one in a wheel, configs/ in a checkout


def simulate(
    scenario: Annotated[
        Path, typer.Option(help="Scenario YAML (default: configs/scenarios/default.yaml).")
    ] = DEFAULT_SCENARIO,
    pattern: Annotated[
        str | None, typer.Option(help="Replace the scenario's load pattern.")
    ] = None,
    policy: Annotated[str | None, typer.Option(help="In-cluster controller: static | hpa.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: the scenario's).")] = None,
    duration: Annotated[float | None, typer.Option(help="Simulated seconds.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write config.json, timeline.csv, summary.json.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.")
    ] = False,
    max_requests: MaxRequests = None,
    allow_large: AllowLarge = False,
) -> None:
    """Run one episode in the twin and print its summary."""
    from tqdm import tqdm

    from kisim.core.guards import guarded
    from kisim.core.outputs import check_out_dir
    from kisim.core.rundir import strict_json, write_run
    from kisim.env.episode import run_windows, twin_backend

    sc = prepare(scenario, pattern, policy, duration, seed)
    if out is not None:
        check_out_dir(out)
    s = sc.seed
    n_windows = math.ceil(sc.duration_s / sc.window_s)
    with guarded(sc, limits(max_requests, allow_large)), \
         tqdm(total=n_windows, desc=f"simulate {sc.traffic.pattern.name}", unit="win",
              disable=as_json or None, file=sys.stderr) as bar:  # fmt: skip
        ep = run_windows(twin_backend(), sc, s, on_window=lambda w: bar.update(1))
    summary = {**run_meta(sc, sc.controller.name, s), **ep.summary}
    if out is not None:
        write_run(out, {**json.loads(resolved_json(sc)), **run_meta(sc, sc.controller.name, s)},
                  ep.windows, summary, ep.latency_hist)  # fmt: skip
    if as_json:
        print(strict_json(summary, sort_keys=True))
        return
    for k, v in summary.items():
        print(f"{k:>20}  {v:.4g}" if isinstance(v, float) else f"{k:>20}  {v}")
    if out is not None:
        print(f"wrote {out}/config.json, timeline.csv, summary.json")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)

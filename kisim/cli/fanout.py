"""``--ray [ADDRESS]``, the option of every command that fans runs out (eval, benchmark, sweep).

A bare ``--ray`` is completed to ``--ray local`` by `kisim.cli.app.optional_values` (the CLI
framework has no options with an optional value); the executor behind it is
`agents.evaluation.ray_executor.RayExecutor`.
"""

from __future__ import annotations

from typing import Annotated

import typer

H_RAY = ("Run on Ray: a bare --ray starts Ray on this machine (127.0.0.1 only, --jobs CPUs, "
         "0 = all); --ray HOST:PORT joins a running cluster (docs/ray.md). Same results as "
         "without it. Needs the ray extra.")  # fmt: skip
RayAddress = Annotated[str | None, typer.Option("--ray", metavar="[ADDRESS]", help=H_RAY)]

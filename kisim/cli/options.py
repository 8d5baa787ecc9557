"""Options several commands share, declared once: the resource limits (kisim.core.guards),
model trust, and where real serving runs (eval --real, train --real, record, sim2real;
`kisim.cli.real_options` gives a command all of those at once)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated

import typer

from kisim.core.errors import KisimError
from kisim.core.guards import Limits

H_MAX_REQUESTS = "Refuse a run estimated to simulate more requests (default 2e9 per run)."
H_ALLOW_LARGE = ("Run even if the estimate exceeds the budgets (half the machine's memory, "
                 "--max-requests); the memory watchdog still stops at 90 % of it.")  # fmt: skip
H_TRUST = ("Load pickled parts of a model (vecnormalize.pkl, pickled objects in the .zip): "
           "a pickle runs code, so only for models you made or trust "
           "(docs/evaluation.md).")  # fmt: skip

MaxRequests = Annotated[float | None, typer.Option(min=1.0, help=H_MAX_REQUESTS)]
AllowLarge = Annotated[bool, typer.Option("--allow-large", help=H_ALLOW_LARGE)]
TrustModel = Annotated[bool, typer.Option("--trust-model", help=H_TRUST)]


def limits(max_requests: float | None, allow_large: bool) -> Limits:
    if max_requests is not None and not math.isfinite(max_requests):
        raise KisimError(f"--max-requests {max_requests}: expected a finite number")
    return Limits(max_requests=max_requests, allow_large=allow_large)


H_PROM = "kubernetes: the cluster's Prometheus URL (local starts its own)."
RealBackend = Annotated[str, typer.Option(help="Real serving: local | kubernetes.")]
Kubeconfig = Annotated[Path | None, typer.Option(help="kubernetes: kubeconfig file.")]
KubeContext = Annotated[str | None, typer.Option(help="kubernetes: kubeconfig context.")]
Namespace = Annotated[str | None, typer.Option(help="kubernetes: namespace (default kisim).")]
PrometheusUrl = Annotated[str | None, typer.Option(help=H_PROM)]


H_INJECT = ("--backend local: break the stack on a schedule, e.g. kill:cpu-0@20s,"
            "sigstop:cpu@30s+10s,prometheus-restart@40s+10s,disk-full@50s+5s "
            "(docs/faults.md).")  # fmt: skip
Inject = Annotated[str | None, typer.Option(help=H_INJECT)]


def split_list(s: str | None) -> list[str]:
    """A comma-separated option value -> its non-empty items."""
    return [x.strip() for x in (s or "").split(",") if x.strip()]


_POOL_COUNT = re.compile(r"^[a-z][a-z0-9]*=\d+(@\S*)?$")


def split_specs(s: str | None) -> list[str]:
    """Comma-separated policy specs; a ``POOL=N`` item continues the spec before it, so a
    constant of several pools (``fixed:gpu=3,cpu=3@prefer-gpu``) stays one policy."""
    out: list[str] = []
    for item in split_list(s):
        if out and _POOL_COUNT.match(item) and re.search(r"(^|=)fixed:", out[-1]):
            out[-1] += "," + item
        else:
            out.append(item)
    return out


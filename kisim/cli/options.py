"""Options several commands share, declared once: the resource limits (kisim.core.guards),
model trust, and where real serving runs (eval --real, train --real, record)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kisim.core.errors import KisimError
from kisim.core.guards import Limits

if TYPE_CHECKING:
    from agents.evaluation.run import RealTarget

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
REAL_BACKENDS: tuple[str, ...] = ("local", "kubernetes")


def real_target(backend: str, kubeconfig: Path | None, context: str | None,
                namespace: str | None, prometheus_url: str | None, dry_run: bool = False,
                inject: str = "") -> RealTarget:  # fmt: skip
    """Where real serving runs, from the options above: one check of them for every command
    (an unknown backend, cluster options given to the local one) before anything starts."""
    if backend not in REAL_BACKENDS:
        raise KisimError(f"--backend {backend}: expected local or kubernetes")
    if backend == "local" and (kubeconfig or context or namespace or prometheus_url):
        raise KisimError("--kubeconfig/--context/--namespace/--prometheus-url need "
                         "--backend kubernetes")  # fmt: skip
    from agents.evaluation.run import RealTarget

    return RealTarget(backend, kubeconfig, context, namespace, prometheus_url, dry_run, inject)


H_INJECT = ("--backend local: break the stack on a schedule, e.g. kill:cpu-0@20s,"
            "sigstop:cpu@30s+10s,prometheus-restart@40s+10s,disk-full@50s+5s "
            "(docs/faults.md).")  # fmt: skip
Inject = Annotated[str | None, typer.Option(help=H_INJECT)]

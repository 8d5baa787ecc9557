"""`kisim record`: a user schedule against a fixed configuration, written as a trace bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kisim.cli.options import Inject
from kisim.core.errors import KisimError


def record_cmd(
    schedule: Annotated[Path, typer.Option(help="Record schedule YAML (configs/schedules/).")],
    out: Annotated[Path, typer.Option(help="Bundle folder to create (must not exist).")],
    backend: Annotated[str, typer.Option(help="local | kubernetes.")] = "local",
    scenario: Annotated[
        Path | None,
        typer.Option(
            help="Base scenario (devices, calibration, cluster); default: the schedule's "
            "`scenario:` or configs/scenarios/default.yaml."
        ),
    ] = None,  # fmt: skip
    kubeconfig: Annotated[Path | None, typer.Option(help="kubernetes: kubeconfig file.")] = None,
    context: Annotated[str | None, typer.Option(help="kubernetes: kubeconfig context.")] = None,
    namespace: Annotated[str, typer.Option(help="kubernetes: namespace.")] = "kisim",
    prometheus_url: Annotated[
        str | None,
        typer.Option(help="kubernetes: the cluster's Prometheus (local starts its own)."),
    ] = None,  # fmt: skip
    inject: Inject = None,
) -> None:
    """Drive a load schedule against a fixed configuration and write a trace bundle
    (docs/bundle-format.md): manifest, requests, Locust CSVs, Prometheus series, events,
    isolated service times."""
    if backend not in ("local", "kubernetes"):
        raise KisimError(f"--backend {backend}: expected local or kubernetes")
    if not schedule.is_file():
        raise KisimError(f"{schedule}: no such file (--schedule)")
    kube = None
    if backend == "kubernetes":
        from bridge.kube_settings import KubeSettings

        kube = KubeSettings(kubeconfig=kubeconfig, context=context, namespace=namespace)
    elif kubeconfig or context or prometheus_url:
        raise KisimError("--kubeconfig/--context/--prometheus-url need --backend kubernetes")
    import signal

    from bridge.record import Recorder

    rec = Recorder(schedule, out, backend=backend, scenario=scenario, kube=kube,
                   prometheus_url=prometheus_url, inject=inject or "")  # fmt: skip

    def _term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: no half bundle, no processes

    old = signal.signal(signal.SIGTERM, _term)
    try:
        s = rec.run()
    except KeyboardInterrupt:
        raise KisimError(
            f"interrupted: no bundle written to {out}; every process it started is stopped"
        ) from None
    finally:
        signal.signal(signal.SIGTERM, old)
    dur = s.end_unix_s - s.start_unix_s
    print(f"wrote {s.out}: {s.requests} requests ({s.failed} failed) in {dur:.1f} s, "
          f"{s.throughput_rps:.1f} req/s; Triton counted {s.triton_success:g} successes; "
          f"{s.wall_s:.0f} s wall")  # fmt: skip
    if (s.out / "perf" / "perf.csv").is_file():  # a sweep: perf_analyzer's columns too
        print(f"wrote {s.out / 'perf'}: perf.csv (perf_analyzer's columns) and perf_run.yaml")


def register(app: typer.Typer) -> None:
    app.command("record")(record_cmd)

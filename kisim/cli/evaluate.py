"""`kisim eval`, `kisim report` and `kisim demo`: policies x patterns x seeds, published."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from kisim.cli.simulate import prepare
from kisim.config import Scenario, resolved_json
from kisim.errors import KisimError

SEED_PATTERNS = "ramp,spike,periodic,random"
DEFAULT_SCENARIO = Path(__file__).resolve().parents[2] / "configs" / "scenarios" / "default.yaml"
H_REF = "Policy the others are tested against."
H_REAL = "Run on real serving (docs/real-cluster.md): one run at a time, raw traces kept."
H_PROM = "kubernetes: the cluster's Prometheus URL (local starts its own)."
H_DRY = "With --real: print what would start and change; start and change nothing."


def _split(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


@dataclass(frozen=True)
class RealTarget:
    """Where `kisim eval --real` runs: the backend and, for Kubernetes, which cluster."""

    backend: str = "local"
    kubeconfig: Path | None = None
    context: str | None = None
    namespace: str | None = None
    prometheus_url: str | None = None
    dry_run: bool = False

    def kube(self) -> dict[str, Any] | None:
        if self.backend != "kubernetes":
            return None
        from bridge.kube_settings import KubeSettings

        d: dict[str, Any] = {"kubeconfig": self.kubeconfig, "context": self.context,
                             "dry_run": self.dry_run}  # fmt: skip
        if self.namespace:
            d["namespace"] = self.namespace
        return json.loads(KubeSettings(**d).model_dump_json())


def run_eval(scenario: Path, policies: list[str], patterns: list[str], runs: int, out: Path,
             jobs: int, duration: float | None, reference: str | None,
             real: RealTarget | None = None) -> object:  # fmt: skip
    from agents.episodes import TwinEpisode, check_policies
    from agents.evaluate import evaluate
    from kisim.patterns import PATTERNS

    sc = prepare(scenario, None, None, duration)
    check_policies(policies)
    for p in patterns:
        if p not in PATTERNS:
            raise KisimError(f"unknown pattern '{p}' (known: {', '.join(PATTERNS)})")
    if runs < 1:
        raise KisimError(f"--runs {runs}: must be >= 1")
    text = resolved_json(sc)
    ref = reference if reference is not None else ("hpa" if "hpa" in policies else policies[0])
    meta: dict[str, Any] = {"scenario": str(scenario), "backend": "twin",
                            "duration_s": sc.duration_s}  # fmt: skip
    episode: Any = TwinEpisode(json.loads(text))
    if real is not None:
        from agents.real_episode import RealEpisode, check_real

        kube = real.kube()
        check_real(sc, policies, real.backend, kube, real.prometheus_url)
        if real.dry_run:
            return _dry_run(sc, policies, patterns, runs, real)
        if jobs != 1:
            print("note: real runs are sequential (--jobs ignored)", file=sys.stderr)
        jobs = 1
        episode = RealEpisode(json.loads(text), real.backend, kube, real.prometheus_url)
        meta["backend"] = real.backend
        if kube is not None:
            meta.update(context=real.context, namespace=kube["namespace"])
        text += real.backend  # a twin evaluation and a real one never share OUT
    return evaluate(
        policies, patterns, list(range(runs)), out, episode, jobs=jobs, reference=ref,
        fingerprint=hashlib.sha256(text.encode()).hexdigest(), meta=meta,
    )  # fmt: skip


def _dry_run(sc: Scenario, policies: list[str], patterns: list[str], runs: int,
             real: RealTarget) -> None:  # fmt: skip
    """Print what the real evaluation would do and change; start and change nothing."""
    from agents.real_episode import plan

    n = len(policies) * len(patterns) * runs
    print(f"dry run: {n} real runs of {sc.duration_s:g} s ({n * sc.duration_s / 60:.0f} min of "
          f"load) on the {real.backend} backend, one after another")  # fmt: skip
    for line in plan(sc, policies, real.backend, real.kube()):
        print(line)


def eval_cmd(
    scenario: Annotated[Path, typer.Option(help="Scenario YAML.")] = DEFAULT_SCENARIO,
    policies: Annotated[str, typer.Option(help="Comma-separated policies.")] = "static,hpa",
    patterns: Annotated[str, typer.Option(help="Comma-separated load patterns.")] = SEED_PATTERNS,
    runs: Annotated[int, typer.Option(help="Seeds per policy x pattern (common to all).")] = 10,
    out: Annotated[Path, typer.Option(help="Output directory (resumable).")] = Path("results/eval"),
    jobs: Annotated[int, typer.Option(help="Parallel processes (0 = one per CPU).")] = 1,
    duration: Annotated[float | None, typer.Option(help="Seconds per run.")] = None,
    reference: Annotated[str | None, typer.Option(help=H_REF)] = None,
    real: Annotated[bool, typer.Option("--real", help=H_REAL)] = False,
    backend: Annotated[str, typer.Option(help="With --real: local | kubernetes.")] = "local",
    kubeconfig: Annotated[Path | None, typer.Option(help="kubernetes: kubeconfig file.")] = None,
    context: Annotated[str | None, typer.Option(help="kubernetes: kubeconfig context.")] = None,
    namespace: Annotated[str | None, typer.Option(help="kubernetes: namespace.")] = None,
    prometheus_url: Annotated[str | None, typer.Option(help=H_PROM)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=H_DRY)] = False,
) -> None:
    """Evaluate policies x patterns x seeds: summary.csv, significance.csv, figures, report.md."""
    target = None
    if real:
        if backend == "local" and (kubeconfig or context or namespace or prometheus_url):
            raise KisimError("--kubeconfig/--context/--namespace/--prometheus-url need "
                             "--backend kubernetes")  # fmt: skip
        target = RealTarget(backend, kubeconfig, context, namespace, prometheus_url, dry_run)
    elif backend != "local" or kubeconfig or context or namespace or prometheus_url or dry_run:
        raise KisimError("--backend/--kubeconfig/--context/--namespace/--prometheus-url/"
                         "--dry-run need --real")  # fmt: skip
    res = _on_sigterm(run_eval, scenario, _split(policies), _split(patterns), runs, out, jobs,
                      duration, reference, target)  # fmt: skip
    if res is not None:
        _print_result(res, out)


def _on_sigterm(fn: Callable[..., Any], *args: Any) -> Any:
    """SIGTERM cleans up like Ctrl-C: real servers stopped, replicas restored, runs kept."""
    import signal

    def _term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _term)
    try:
        return fn(*args)
    finally:
        signal.signal(signal.SIGTERM, old)


def _print_result(res: object, out: Path) -> None:
    failed = getattr(res, "failed", [])
    print(f"ran {getattr(res, 'ran', 0)}, skipped {getattr(res, 'skipped', 0)} already on disk, "
          f"{len(failed)} failed, in {getattr(res, 'elapsed_s', 0.0):.1f} s")  # fmt: skip
    print(f"report: {out / 'report.md'}")
    if failed:
        raise KisimError(f"{len(failed)} runs failed (see {out}/eval.json); rerun to retry them")


def report_cmd(
    out: Annotated[Path, typer.Argument(help="An evaluation's output directory.")],
) -> None:
    """Re-render summary, significance, figures and report.md from the run directories."""
    from agents.report import render

    if not (out / "runs").is_dir():
        raise KisimError(f"{out}: no runs/ folder (not a kisim eval output)")
    files = render(out)
    print(f"report: {files.get('report', out / 'report.md')}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
    app.command("report")(report_cmd)

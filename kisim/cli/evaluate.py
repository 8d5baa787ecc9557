"""`kisim eval`, `kisim report` and `kisim demo`: policies x patterns x seeds, published."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agents.evaluation.run import RealTarget, on_sigterm, run_eval
from kisim.cli.fanout import RayAddress
from kisim.cli.options import (
    AllowLarge,
    Inject,
    MaxRequests,
    TrustModel,
    limits,
    split_list,
    split_specs,
)
from kisim.cli.real_options import LOCAL, checked, given, with_real_options
from kisim.core.errors import KisimError
from kisim.core.paths import default_scenario

SEED_PATTERNS = "ramp,spike,periodic,random"
DEFAULT_SCENARIO = default_scenario()
H_REF = "Policy the others are tested against."
H_REAL = "Run on real serving (docs/real-cluster.md): one run at a time, raw traces kept."
H_DRY = "With --real: print what would start and change; start and change nothing."
H_FIRST = ("First seed (seeds FIRST .. FIRST+runs-1); e.g. 100000 to choose between models on "
           "training's held-out seeds, never the evaluation seeds (0 ..).")




@with_real_options
def eval_cmd(
    scenario: Annotated[Path, typer.Option(help="Scenario YAML.")] = DEFAULT_SCENARIO,
    policies: Annotated[str, typer.Option(help="Comma-separated policies.")] = "static,hpa",
    patterns: Annotated[str, typer.Option(help="Comma-separated load patterns.")] = SEED_PATTERNS,
    runs: Annotated[int, typer.Option(help="Seeds per policy x pattern (common to all).")] = 10,
    first_seed: Annotated[int, typer.Option(help=H_FIRST)] = 0,
    out: Annotated[Path, typer.Option(help="Output directory (resumable).")] = Path("results/eval"),
    jobs: Annotated[int, typer.Option(min=0, help="Parallel processes (0 = one per CPU).")] = 1,
    duration: Annotated[float | None, typer.Option(help="Seconds per run.")] = None,
    reference: Annotated[str | None, typer.Option(help=H_REF)] = None,
    real: Annotated[bool, typer.Option("--real", help=H_REAL)] = False,
    real_options: RealTarget = LOCAL,  # --backend --kubeconfig ... (with_real_options)
    dry_run: Annotated[bool, typer.Option("--dry-run", help=H_DRY)] = False,
    max_requests: MaxRequests = None,
    allow_large: AllowLarge = False,
    trust_model: TrustModel = False,
    inject: Inject = None,
    ray: RayAddress = None,
) -> None:
    """Evaluate policies x patterns x seeds: summary.csv, significance.csv, figures, report.md."""
    target = None
    if real:
        target = checked(real_options, dry_run, inject or "")
        if inject:
            from bridge.faults import parse_faults

            parse_faults(inject)  # a bad schedule ends the command before anything starts
    elif given(real_options) or dry_run or inject:
        raise KisimError("--backend/--kubeconfig/--context/--namespace/--prometheus-url/"
                         "--dry-run/--inject need --real")  # fmt: skip
    res = on_sigterm(run_eval, scenario, split_specs(policies), split_list(patterns), runs, out,
                     jobs, duration, reference, target, limits(max_requests, allow_large),
                     trust_model, ray, first_seed)  # fmt: skip
    if res is not None:
        _print_result(res, out)


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
    from agents.evaluation.report import render

    if not (out / "runs").is_dir():
        raise KisimError(f"{out}: no runs/ folder (not a kisim eval output)")
    files = render(out)
    print(f"report: {files.get('report', out / 'report.md')}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
    app.command("report")(report_cmd)

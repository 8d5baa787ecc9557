"""`kisim eval`, `kisim report` and `kisim demo`: policies x patterns x seeds, published."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer

from kisim.cli.simulate import prepare
from kisim.config import resolved_json
from kisim.errors import KisimError

SEED_PATTERNS = "ramp,spike,periodic,random"
DEFAULT_SCENARIO = Path(__file__).resolve().parents[2] / "configs" / "scenarios" / "default.yaml"


def _split(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def run_eval(scenario: Path, policies: list[str], patterns: list[str], runs: int, out: Path,
             jobs: int, duration: float | None, reference: str | None) -> object:  # fmt: skip
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
    import json

    ref = reference if reference is not None else ("hpa" if "hpa" in policies else policies[0])
    return evaluate(
        policies, patterns, list(range(runs)), out, TwinEpisode(json.loads(text)), jobs=jobs,
        reference=ref, fingerprint=hashlib.sha256(text.encode()).hexdigest(),
        meta={"scenario": str(scenario), "backend": "twin", "duration_s": sc.duration_s},
    )  # fmt: skip


def eval_cmd(
    scenario: Annotated[Path, typer.Option(help="Scenario YAML.")] = DEFAULT_SCENARIO,
    policies: Annotated[str, typer.Option(help="Comma-separated policies.")] = "static,hpa",
    patterns: Annotated[str, typer.Option(help="Comma-separated load patterns.")] = SEED_PATTERNS,
    runs: Annotated[int, typer.Option(help="Seeds per policy x pattern (common to all).")] = 10,
    out: Annotated[Path, typer.Option(help="Output directory (resumable).")] = Path("results/eval"),
    jobs: Annotated[int, typer.Option(help="Parallel processes (0 = one per CPU).")] = 1,
    duration: Annotated[float | None, typer.Option(help="Simulated seconds per run.")] = None,
    reference: Annotated[str | None, typer.Option(help="Policy the others are tested against.")] = None,
) -> None:
    """Evaluate policies x patterns x seeds; write summary.csv, significance.csv, figures, report.md."""
    res = run_eval(scenario, _split(policies), _split(patterns), runs, out, jobs, duration, reference)
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
    from agents.report import render

    if not (out / "runs").is_dir():
        raise KisimError(f"{out}: no runs/ folder (not a kisim eval output)")
    files = render(out)
    print(f"report: {files.get('report', out / 'report.md')}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
    app.command("report")(report_cmd)

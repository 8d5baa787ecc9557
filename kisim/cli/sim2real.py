"""`kisim sim2real`: the same policies, workloads and seeds on real serving and in the twin,
side by side (agents.sim2real; docs/sim2real.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from agents.evaluation.run import RealTarget, on_sigterm
from kisim.cli.options import AllowLarge, MaxRequests, TrustModel, limits, split_specs
from kisim.cli.real_options import LOCAL, checked, with_real_options
from kisim.core.errors import KisimError

H_CONFIG = "Experiment file (kind: Sim2RealConfig, configs/sim2real/); flags below override it."
H_NO_REAL = "Run the twin's side only (checks the pipeline; the report shows no real runs)."
H_TUNE = "twin: tune the rule baseline (the config's tune.opponent) on the twin first."
H_DRY = "Print the plan of the real runs; run nothing."
H_RENDER = "Only re-render the report of OUT from the runs on disk."


def _split(s: str | None) -> list[str] | None:
    return None if s is None else split_specs(s)


@with_real_options
def sim2real_cmd(
    config: Annotated[Path | None, typer.Option(help=H_CONFIG)] = None,
    scenario: Annotated[Path | None, typer.Option(help="Scenario YAML.")] = None,
    calibration: Annotated[Path | None, typer.Option(help="Calibration for the twin.")] = None,
    policies: Annotated[str | None, typer.Option(help="Comma-separated policies.")] = None,
    workloads: Annotated[str | None, typer.Option(help="Comma-separated load patterns.")] = None,
    seeds: Annotated[int | None, typer.Option(min=1, help="Seeds per policy x workload.")] = None,
    duration: Annotated[float | None, typer.Option(help="Seconds per run.")] = None,
    reference: Annotated[str | None, typer.Option(help="Reference policy.")] = None,
    out: Annotated[Path, typer.Option(help="Output directory (resumable).")] = Path(
        "results/sim2real"),  # fmt: skip
    jobs: Annotated[int, typer.Option(min=0, help="Parallel twin runs (0 = one per CPU).")] = 1,
    no_real: Annotated[bool, typer.Option("--no-real", help=H_NO_REAL)] = False,
    tune_on: Annotated[str | None, typer.Option(help=H_TUNE)] = None,
    render_only: Annotated[bool, typer.Option("--render-only", help=H_RENDER)] = False,
    real_options: RealTarget = LOCAL,  # --backend --kubeconfig ... (with_real_options)
    dry_run: Annotated[bool, typer.Option("--dry-run", help=H_DRY)] = False,
    max_requests: MaxRequests = None,
    allow_large: AllowLarge = False,
    trust_model: TrustModel = False,
) -> None:
    """Run every policy x workload x seed on real serving and in the twin (calibrated for that
    backend); write report.md, CSVs, JSON and figures: gaps, Kendall's tau, verdicts."""
    from agents.sim2real.experiment import run_sim2real
    from agents.sim2real.report import render
    from agents.sim2real.spec import Sim2RealSpec, load_spec
    from kisim.core.config import validated

    if render_only:
        files = render(out)
        print(f"report: {files['report']}")
        return
    real = checked(real_options, dry_run)
    if tune_on not in (None, "twin"):
        raise KisimError(f"--tune-on {tune_on}: only 'twin' (the rule is never tuned on reality)")
    if config is not None:
        spec = load_spec(config)
    elif scenario is not None:
        spec = validated(Sim2RealSpec, {"name": scenario.stem, "scenario": scenario.resolve(),
                                        "policies": _split(policies) or ["static", "hpa"],
                                        "workloads": _split(workloads) or ["ramp"]},
                         "kisim sim2real (flags)")  # fmt: skip
        if not scenario.is_file():
            raise KisimError(f"--scenario {scenario}: no such file")
    else:
        raise KisimError("give --config FILE (configs/sim2real/) or --scenario FILE")
    upd: dict[str, object | None] = {k: v for k, v in {
        "scenario": scenario.resolve() if scenario else None,
        "calibration": calibration.resolve() if calibration else None,
        "policies": _split(policies), "workloads": _split(workloads), "seeds": seeds,
        "duration_s": duration, "reference": reference}.items() if v is not None}  # fmt: skip
    for k in ("scenario", "calibration"):
        p = upd.get(k)
        if isinstance(p, Path) and not p.is_file():
            raise KisimError(f"--{k} {p}: no such file")
    if "policies" in upd and reference is None and spec.reference not in upd["policies"]:  # type: ignore[operator]
        upd["reference"] = None  # the file's reference is not among the policies given here
    spec = validated(Sim2RealSpec, {**spec.model_dump(), **upd}, "kisim sim2real (flags)")
    target = None if no_real else real
    argv = ["kisim", *sys.argv[1:]]
    res = on_sigterm(run_sim2real, spec, out, target, jobs, limits(max_requests, allow_large),
                     trust_model, argv, True, True, tune_on == "twin")  # fmt: skip
    if res is None:
        return
    for side, r in (("twin", res.twin), ("real", res.real)):
        if r is not None:
            print(f"{side}: ran {r.ran}, skipped {r.skipped} already on disk, "
                  f"{len(r.failed)} failed, in {r.elapsed_s:.1f} s")  # fmt: skip
    print(f"report: {res.files['report']}")
    if res.failed:
        raise KisimError(f"{res.failed} runs failed (see {out}/twin|real/eval.json); rerun to "
                         "retry them")  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("sim2real")(sim2real_cmd)

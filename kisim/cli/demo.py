"""`kisim demo`: the main job (what `scripts/demo.sh` runs) on the suite's gpu-fleet scenario:
train PPO briefly on the twin, evaluate it against the baselines on the scenario's own load
pattern, write ``results/demo/`` and print where the report is and the headline
(agents.demo; docs/training.md, "The demo")."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from kisim.cli.options import split_list, split_specs
from kisim.core.errors import KisimError

H_TIMESTEPS = "Most training steps (default: the demo config's budget.timesteps)."
H_MINUTES = "Most training wall minutes (default: the demo config's budget.max_minutes)."
H_CONFIG = "Training config YAML (default: configs/train/demo.yaml)."
H_BASELINES = "Comma-separated baselines PPO is evaluated against (hpa is the reference)."
H_ORACLE = "Also evaluate the clairvoyant oracle (its margin over hpa; ~2-3 min more on 2 cores)."
H_RETRAIN = "Train afresh even if OUT/train holds a finished run with the same config."
H_PATTERNS = "Comma-separated load patterns (default: the scenario's own)."
H_SCENARIO = "Scenario YAML (default: configs/scenarios/suite/gpu-fleet.yaml)."


def demo(
    out: Annotated[Path, typer.Option(help="Output directory (resumable).")] = Path("results/demo"),
    runs: Annotated[int, typer.Option(help="Seeds per policy x pattern.")] = 10,
    jobs: Annotated[int, typer.Option(help="Parallel evaluation processes (0 = one per CPU).")] = 0,
    timesteps: Annotated[int | None, typer.Option(min=1, help=H_TIMESTEPS)] = None,
    minutes: Annotated[float | None, typer.Option(min=0.01, help=H_MINUTES)] = None,
    baselines: Annotated[str, typer.Option(help=H_BASELINES)] = "static,hpa,threshold,kpa",
    oracle: Annotated[bool, typer.Option("--oracle", help=H_ORACLE)] = False,
    patterns: Annotated[str, typer.Option(help=H_PATTERNS)] = "",
    scenario: Annotated[Path | None, typer.Option(help=H_SCENARIO)] = None,
    config: Annotated[Path | None, typer.Option(help=H_CONFIG)] = None,
    retrain: Annotated[bool, typer.Option("--retrain", help=H_RETRAIN)] = False,
) -> None:
    """Train PPO briefly on the demo scenario, evaluate it against the baselines, report."""
    t0 = time.perf_counter()
    try:
        import stable_baselines3  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise KisimError(f"kisim demo needs the rl extra: pip install -e '.[rl]' ({e})") from None
    from agents.demo import DEMO_CONFIG, DEMO_SCENARIO, headline_lines, run_demo

    cfg = config if config is not None else DEMO_CONFIG
    if not cfg.is_file():
        raise KisimError(f"{cfg}: no such training config file")
    sc = scenario if scenario is not None else DEMO_SCENARIO
    if not sc.is_file():
        raise KisimError(f"{sc}: no such scenario file")
    over: dict[str, Any] = {}
    if timesteps is not None:
        over["budget.timesteps"] = timesteps
    if minutes is not None:
        over["budget.max_minutes"] = minutes
    base = split_specs(baselines)
    if oracle and "oracle" not in base:
        base.append("oracle")
    try:
        res = run_demo(
            out,
            runs=runs,
            jobs=jobs,
            baselines=base,
            patterns=split_list(patterns) if patterns else None,
            config=cfg,
            scenario=sc,
            overrides=over,
            retrain=retrain,
        )
    except KeyboardInterrupt:
        print(f"interrupted: rerun `kisim demo --out {out}` to continue where it stopped")
        raise typer.Exit(130) from None
    t = res.train
    how = "reused" if t.get("reused") else f"{t.get('kind')}, {t.get('timesteps', 0):,} steps"
    print(
        f"demo finished in {(time.perf_counter() - t0) / 60:.1f} min: training "
        f"{res.train_s / 60:.1f} min ({how}), evaluation {res.eval_s / 60:.1f} min"
    )
    print(
        f"report: {res.report}  (summary.csv, significance.csv, figures/ incl. the training "
        f"curves figures/training_progress.png; model: {out / 'train' / 'best_model.zip'})"
    )
    for line in headline_lines(res):
        print(line)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)

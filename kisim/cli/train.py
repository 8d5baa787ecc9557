"""`kisim train`: PPO on the twin (agents.train; docs/training.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from kisim.errors import KisimError


def _split(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


H_SCENARIO = "Scenario YAML (default: the built-in default)."
H_PATTERNS = "Comma-separated training patterns (default: the config's ramp,spike,periodic,random)."
H_TIMESTEPS = "Most environment steps (default: the config's budget.timesteps)."
H_RESUME = "Continue the run in OUT from its last checkpoint (--timesteps may raise the budget)."
H_CONFIG = "Training config YAML (default: configs/train/default.yaml)."


def train_cmd(
    scenario: Annotated[Path | None, typer.Option(help=H_SCENARIO)] = None,
    patterns: Annotated[str | None, typer.Option(help=H_PATTERNS)] = None,
    timesteps: Annotated[int | None, typer.Option(min=1, help=H_TIMESTEPS)] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed (default: the config's).")] = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("results/train"),
    resume: Annotated[bool, typer.Option("--resume", help=H_RESUME)] = False,
    config: Annotated[Path | None, typer.Option(help=H_CONFIG)] = None,
) -> None:
    """Train PPO on the twin; writes model.zip, best_model.zip, progress, figure, stopped.json."""
    t0 = time.perf_counter()
    try:
        import stable_baselines3  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise KisimError(f"kisim train needs the rl extra: pip install -e '.[rl]' ({e})") from None
    from agents.train import resolve_run, train

    if scenario is not None and not scenario.is_file():
        raise KisimError(f"{scenario}: no such scenario file")
    pats = _split(patterns) if patterns is not None else None
    if pats is not None and not pats:
        raise KisimError("--patterns: empty list")
    sc, cfg, sc_file = resolve_run(out, resume, scenario, config, pats, timesteps, seed)
    try:
        res = train(sc, cfg, out, resume=resume, scenario_file=sc_file, t0=t0)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if res.stop_kind == "interrupted":
        print(f"interrupted: checkpoint and model.zip in {out}; continue with "
              f"kisim train --out {out} --resume")  # fmt: skip
        raise typer.Exit(130)
    fb = res.first_beats_baseline
    beat = (f"first beat {cfg.evaluation.baseline} on every pattern (held-out episodes) after "
            f"{fb['wall_s'] / 60:.1f} min, {fb['timesteps']} steps" if fb else
            f"never beat {cfg.evaluation.baseline} on every pattern of the held-out "
            "episodes")  # fmt: skip
    print(f"stopped ({res.stop_kind}) after {res.timesteps} steps, "
          f"{res.wall_s / 60:.1f} min; {beat}")  # fmt: skip
    print(f"best model: {out / 'best_model.zip'} (evaluation reward {res.best_mean_reward:.3f} "
          f"at {res.best_timesteps} steps); final: {out / 'model.zip'}")  # fmt: skip
    print(f"evaluate: kisim eval --policies hpa,ppo:{out / 'best_model.zip'} --out {out / 'eval'}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)

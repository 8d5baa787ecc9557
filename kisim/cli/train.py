"""`kisim train`: PPO on the twin (agents.training.train; docs/training.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from kisim.cli.fanout import RayAddress
from kisim.cli.options import (
    Kubeconfig,
    KubeContext,
    Namespace,
    PrometheusUrl,
    RealBackend,
    TrustModel,
    split_list,
)
from kisim.core.errors import KisimError

H_SCENARIO = "Scenario YAML (default: the built-in default)."
H_PATTERNS = "Comma-separated training patterns (default: the config's ramp,spike,periodic,random)."
H_TIMESTEPS = "Most environment steps (default: the config's budget.timesteps)."
H_RESUME = "Continue the run in OUT from its last checkpoint (--timesteps may raise the budget)."
H_CONFIG = "Training config YAML (default: configs/train/default.yaml)."
H_REAL = "Fine-tune on real serving (one episode at a time, checkpoint after each)."
H_FROM = "With --real: the twin-trained model to continue (e.g. results/train/best_model.zip)."
H_MAX = "With --real: hard replica bounds, e.g. cpu=4,gpu=1 (lowers pools' max_replicas)."
H_TUNE = ("Search PPO hyper-parameters with Ray Tune (docs/ray.md): --trials short trainings "
          "of --timesteps each (default 20000), scored on held-out tuning seeds; writes "
          "trials.csv and best.yaml. Needs the rl and ray extras.")


def _bounds(spec: str | None) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for part in split_list(spec or ""):
        pool, _, n = part.partition("=")
        if not n.strip().isdigit():
            raise KisimError(f"--max-replicas {part}: expected POOL=N, e.g. cpu=4")
        out.append((pool.strip(), int(n)))
    return tuple(out)


def _finetune(scenario: Path | None, source: Path, target: object, out: Path, resume: bool,
              episodes: int, lr: float, bounds: tuple[tuple[str, int], ...],
              patterns: list[str], seed: int, trust_model: bool) -> None:  # fmt: skip
    """`kisim train --real`: fine-tune on the backend the flags name, then say where."""
    from agents.training.finetune_run import run_finetune

    res = run_finetune(scenario, source, target, out, resume, episodes, lr, bounds, patterns, seed,
                       trust_model)  # fmt: skip
    print(f"fine-tuned {res.episodes_done} real episodes in {res.wall_s / 60:.1f} min; "
          f"model: {out / 'model.zip'}; per episode: {out / 'episodes.csv'}")  # fmt: skip
    print(f"evaluate: kisim eval --real --backend {target.backend} "
          f"--policies hpa,ppo:{out / 'model.zip'}")  # fmt: skip


def _tune(scenario: Path | None, patterns: str | None, timesteps: int | None,
          seed: int | None, out: Path, config: Path | None, trials: int,
          ray: str | None) -> None:  # fmt: skip
    """`kisim train --tune`: a Ray Tune search over PPO hyper-parameters (agents.training.tune)."""
    try:
        import stable_baselines3  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise KisimError(f"kisim train --tune needs the rl extra: pip install -e '.[rl]' ({e})"
                         ) from None  # fmt: skip
    from agents.training.train import resolve_run
    from agents.training.tune import tune_ppo

    if scenario is not None and not scenario.is_file():
        raise KisimError(f"{scenario}: no such scenario file")
    pats = split_list(patterns) if patterns is not None else None
    sc, cfg, _ = resolve_run(out, False, scenario, config, pats, None, seed)
    res = tune_ppo(sc, cfg, out, trials, timesteps or 20_000,
                   cfg.evaluation.seeds_per_pattern, ray)  # fmt: skip
    best = ", ".join(f"{k.split('.')[-1]}={v:.4g}" for k, v in res.best_params.items())
    print(f"best of {trials} trials: #{res.best} ({best}), score {res.best_score:.4g} on the "
          "tuning seeds")  # fmt: skip
    print(f"trials: {res.files['trials']}; config: {res.files['best']} "
          f"(train it: kisim train --config {res.files['best']})")  # fmt: skip


def train_cmd(
    scenario: Annotated[Path | None, typer.Option(help=H_SCENARIO)] = None,
    patterns: Annotated[str | None, typer.Option(help=H_PATTERNS)] = None,
    timesteps: Annotated[int | None, typer.Option(min=1, help=H_TIMESTEPS)] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed (default: the config's).")] = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("results/train"),
    resume: Annotated[bool, typer.Option("--resume", help=H_RESUME)] = False,
    config: Annotated[Path | None, typer.Option(help=H_CONFIG)] = None,
    real: Annotated[bool, typer.Option("--real", help=H_REAL)] = False,
    from_: Annotated[Path | None, typer.Option("--from", help=H_FROM)] = None,
    backend: RealBackend = "local",
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
    namespace: Namespace = None,
    prometheus_url: PrometheusUrl = None,
    episodes: Annotated[int, typer.Option(min=1, help="With --real: real episodes.")] = 4,
    learning_rate: Annotated[float, typer.Option(min=0.0, help="With --real.")] = 1e-4,
    max_replicas: Annotated[str | None, typer.Option(help=H_MAX)] = None,
    trust_model: TrustModel = False,
    tune: Annotated[bool, typer.Option("--tune", help=H_TUNE)] = False,
    trials: Annotated[int, typer.Option(min=1, help="With --tune: trials.")] = 8,
    ray: RayAddress = None,
) -> None:
    """Train PPO on the twin; writes model.zip, best_model.zip, progress, figure, stopped.json.
    With --real: fine-tune a twin-trained model on real serving (docs/bridge.md)."""
    t0 = time.perf_counter()
    if real:
        if from_ is None:
            raise KisimError("--real needs --from MODEL.zip (a twin-trained policy to fine-tune)")
        if timesteps is not None or config is not None:
            raise KisimError("--timesteps/--config are for twin training; with --real use "
                             "--episodes/--learning-rate")  # fmt: skip
        from agents.evaluation.run import RealTarget

        target = RealTarget(backend, kubeconfig, context, namespace, prometheus_url)
        _finetune(
            scenario,
            from_,
            target,
            out,
            resume,
            episodes,
            learning_rate,
            _bounds(max_replicas),
            split_list(patterns or ""),
            seed or 0,
            trust_model,
        )
        return
    if tune:
        _tune(scenario, patterns, timesteps, seed, out, config, trials, ray)
        return
    if ray is not None:
        raise KisimError("--ray needs --tune (kisim train spreads a hyper-parameter search)")
    if from_ or kubeconfig or context or namespace or prometheus_url or max_replicas:
        raise KisimError("--from/--kubeconfig/--context/--namespace/--prometheus-url/"
                         "--max-replicas need --real")  # fmt: skip
    try:
        import stable_baselines3  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise KisimError(f"kisim train needs the rl extra: pip install -e '.[rl]' ({e})") from None
    from agents.training.train import resolve_run, train

    if scenario is not None and not scenario.is_file():
        raise KisimError(f"{scenario}: no such scenario file")
    pats = split_list(patterns) if patterns is not None else None
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

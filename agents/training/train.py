"""`kisim train`: stable-baselines3 PPO on `KisimEnv` over the twin (docs/training.md).

`train(scenario, config, out)` reads top to bottom: prepare OUT (or reopen it for
``--resume``), start the baseline's held-out episodes in a worker process
(`agents.training.held_out`), build the vectorised training envs and their VecNormalize, build
(or load) PPO (`agents.training.ppo_model`), attach the callbacks
(`agents.training.callbacks`, `agents.training.periodic_eval`, `agents.training.checkpoints`),
learn until the budget, the wall limit, the stopping rule (`agents.training.convergence`) or
Ctrl-C, then write the final model, a last checkpoint, ``stopped.json`` and the training figure.

OUT after a run::

    config.json          resolved scenario + training config + versions (what ran)
    model.zip            the final policy (plain `PPO.load` reads it)
    best_model.zip       the policy with the best held-out evaluation reward
    vecnormalize.pkl     VecNormalize statistics (frozen after warm-up: shared by both)
    checkpoints/step-N/  model.zip, vecnormalize.pkl, state.json, rng.pkl (atomic)
    progress.csv         stable-baselines3 log (rollout/, train/, eval/, time/ keys)
    evaluations.json     every held-out evaluation (per-episode rewards, KPIs, KL, drift)
    eval_baseline.json   the baseline (hpa) on the same held-out episodes
    tb/                  TensorBoard event files (if tensorboard is installed)
    training_progress.png/.pdf
    stopped.json         why training stopped, the best model, when it first beat the baseline
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.training.callbacks import Budget, EpisodeKPIs, FreezeNormalizer, Progress, Timing
from agents.training.checkpoints import (
    STATE,
    VECNORMALIZE,
    Checkpoints,
    checkpoints,
    latest_checkpoint,
    restore_rng,
    save_model_atomic,
    save_vecnormalize_atomic,
    write_checkpoint,
)
from agents.training.held_out import PolicyEvaluator, cached_baseline, eval_episodes
from agents.training.periodic_eval import Evaluation
from agents.training.ppo_model import new_model, ranges, stopping_rule, torch_for_training
from agents.training.run_state import Clock, RunState
from agents.training.train_config import TrainConfig
from agents.training.train_dir import check_fresh_out, resolve_run, write_config
from agents.training.train_log import eval_line, make_logger
from agents.training.training_env import make_vec_env
from kisim.core.config import Scenario, scenario_fingerprint
from kisim.core.errors import is_interrupt
from kisim.core.rundir import read_json, write_json

__all__ = ["TrainResult", "resolve_run", "train"]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class TrainResult:
    out: Path
    timesteps: int
    stop_kind: str
    stop_reason: str
    wall_s: float
    best_mean_reward: float
    best_timesteps: int
    best_wall_s: float
    first_beats_baseline: dict[str, Any] | None
    speed: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class _Session:
    """What one call of `train` works with (the pieces the steps below pass around)."""

    sc: Scenario
    cfg: TrainConfig
    out: Path
    state: RunState
    clock: Clock
    log: Callable[[str], None]
    ck: Path | None = None  # the checkpoint resumed from
    saved: dict[str, Any] = field(default_factory=dict)  # its state.json
    venv: Any = None
    vn: Any = None  # the VecNormalize, if any
    model: Any = None
    demos: Any = None  # the teacher's episodes reused from an earlier run (warm_start.demos)


def train(sc: Scenario, cfg: TrainConfig, out: Path, *, resume: bool = False,
          scenario_file: str | None = None, t0: float | None = None,
          log: Callable[[str], None] = _stderr, progress: bool = False) -> TrainResult:  # fmt: skip
    """Train PPO on `sc` with `cfg` into `out` (see the module doc); resumable.
    `progress` shows a tqdm bar on stderr (log lines are printed above it)."""
    t0 = time.perf_counter() if t0 is None else t0
    out = Path(out)
    torch_for_training(cfg.envs.torch_threads)
    ws, reused = cfg.warm_start, None
    if ws.teacher is not None and not resume:  # before OUT is touched
        from agents.training.imitation import check_teacher, reuse

        check_teacher(sc, ws.teacher)
        if ws.demos is not None:
            reused = reuse(sc, cfg.envs.patterns, ws.teacher, ws.episodes, Path(ws.demos))
    s = _open_out(sc, cfg, out, resume, t0, log)
    s.demos = reused
    write_config(out, sc, cfg, scenario_file)
    max_s = cfg.budget.max_minutes * 60 if cfg.budget.max_minutes else None
    bar = Progress(s.state, s.clock, cfg.budget.timesteps, max_s) if progress else None
    if bar is not None:
        s.log = bar.write
    episodes = eval_episodes(cfg.envs.patterns, cfg.evaluation.seeds_per_pattern)
    base, pool = cached_baseline(out, sc, scenario_fingerprint(sc), cfg.evaluation.baseline,
                                 episodes, s.log)  # fmt: skip
    try:
        _build(s, resume)
        norm, vn, baseline = cfg.normalize, s.vn, cfg.evaluation.baseline
        ev = Evaluation(out, s.state, s.clock, PolicyEvaluator(sc, cfg.envs.patterns, episodes),
                        base, cfg.envs.patterns, cfg.evaluation.every_steps, stopping_rule(cfg),
                        vn, ready=lambda n: vn is None or not norm.obs or n >= norm.warmup_steps,
                        level=cfg.convergence.level,
                        on_record=lambda r: s.log(eval_line(r, baseline)))  # fmt: skip
        if s.ck is not None:
            ev.load_extra(s.ck, s.model)
        timing = Timing()
        ev.timing = timing
        cp = Checkpoints(out, cfg.checkpoints.every_steps, cfg.checkpoints.keep,
                         lambda: _save_checkpoint(s, ev))  # fmt: skip
        cp.timing = timing
        cbs: list[Any] = [timing]
        if vn is not None:
            cbs.append(FreezeNormalizer(vn, norm.warmup_steps))
        cbs += [EpisodeKPIs(cfg.envs.n_envs), Budget(s.state, s.clock, cfg.budget.timesteps, max_s),
                ev, cp]  # fmt: skip
        if bar is not None:
            cbs.append(bar)
        _learn(s, cbs, resume)
        _stop_kind(s, max_s)
        if bar is not None:
            bar.close()
            s.log = log
        return _finish(s, ev, timing)
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.terminate()
        if s.venv is not None:
            try:
                s.venv.close()
            except Exception:  # noqa: BLE001 - dead SubprocVecEnv workers after Ctrl-C
                pass
        if s.model is not None and getattr(s.model, "_logger", None) is not None:  # set late
            s.model.logger.close()


def _open_out(sc: Scenario, cfg: TrainConfig, out: Path, resume: bool, t0: float,
              log: Callable[[str], None]) -> _Session:  # fmt: skip
    """A fresh OUT (refusing a used one), or the newest checkpoint's state for ``--resume``."""
    if resume:
        ck = latest_checkpoint(out)
        saved = read_json(ck / STATE)
        state = RunState.from_json(saved["run"])
        log(f"resuming from {ck} ({saved['timesteps']} steps, {state.wall_before_s / 60:.1f} min)")
        return _Session(sc, cfg, out, state, Clock(state, t0), log, ck, saved)
    check_fresh_out(out)
    out.mkdir(parents=True, exist_ok=True)
    state = RunState()
    return _Session(sc, cfg, out, state, Clock(state, t0), log)


def also_scenarios(cfg: TrainConfig) -> list[Scenario]:
    """The generalist's further scenarios (`envs.also_scenarios`), loaded as files."""
    from kisim.core.config import load_scenario

    return [load_scenario(Path(p)) for p in cfg.envs.also_scenarios]


def _build(s: _Session, resume: bool) -> None:
    """The vectorised training envs, their VecNormalize and the PPO model (new or resumed)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    cfg, ck = s.cfg, s.ck
    s.venv = make_vec_env(s.sc, list(cfg.envs.patterns), cfg.envs.n_envs,
                          None if resume else cfg.seed, cfg.envs.schedule, ranges(cfg),
                          cfg.envs.vec_env, also_scenarios(cfg))  # fmt: skip
    norm = cfg.normalize
    if norm.obs or norm.reward:
        if ck is not None and (ck / VECNORMALIZE).is_file():
            s.vn = VecNormalize.load(str(ck / VECNORMALIZE), s.venv)
        else:
            s.vn = VecNormalize(s.venv, norm_obs=norm.obs, norm_reward=norm.reward,
                                clip_obs=norm.clip_obs, clip_reward=norm.clip_reward,
                                gamma=cfg.ppo.gamma)  # fmt: skip
        s.venv = s.vn
    if ck is not None:
        s.model = PPO.load(str(ck / "model.zip"), env=s.venv, device="cpu")
        restore_rng(ck, s.venv, s.saved["envs"])
        if not s.saved["envs"]:  # not saved (workers gone at Ctrl-C): a fresh stream
            s.venv.seed(cfg.seed + 7919 * int(s.saved["timesteps"]))
    else:
        s.model = new_model(cfg, s.venv)
        if cfg.warm_start.teacher is not None:
            _warm_start(s)
    s.model.set_logger(make_logger(s.out, cfg, s.model.num_timesteps if resume else None, s.log))


CLONE = "warm_start_clone.zip"  # the clone after each fit: DAgger's player, then PPO's start


def _warm_start(s: _Session) -> None:
    """Imitation of the teacher before PPO (`agents.training.imitation`), with DAgger rounds:
    OUT/demos.npz holds every episode, OUT/warm_start.json the teacher, seeds, rewards, fits,
    OUT/warm_start_clone.zip the cloned policy PPO starts from."""
    from agents.training.imitation import demo_seeds, record, start_normalizer

    ws, sc, patterns, t = s.cfg.warm_start, s.sc, s.cfg.envs.patterns, time.perf_counter()
    assert ws.teacher is not None
    seeds = demo_seeds(0, ws.episodes)
    if s.demos is not None:
        demos = s.demos
        s.log(f"warm start: {ws.episodes} teacher episodes reused from {ws.demos}")
    else:
        demos = record(sc, patterns, ws.teacher, seeds, ws.jobs, s.log)
    teacher = demos.episode_rewards()
    scale = start_normalizer(s.vn, demos)
    fit = [{"round": 0, **_fit(s, demos, scale)}]
    for k in range(1, ws.dagger_rounds + 1):
        more_seeds = demo_seeds(ws.episodes + (k - 1) * ws.dagger_episodes, ws.dagger_episodes)
        more = record(sc, patterns, ws.teacher, more_seeds, ws.jobs, s.log, s.out / CLONE)
        demos, seeds = demos + more, seeds + more_seeds
        fit.append({"round": k, "clone_episode_rewards": more.episode_rewards(),
                    **_fit(s, demos, scale)})  # fmt: skip
    demos.save(s.out / "demos.npz")
    write_json(s.out / "warm_start.json", {
        "teacher": ws.teacher, "seeds": seeds, "patterns": patterns, "reused_from": ws.demos,
        "teacher_episode_rewards": teacher, "teacher_mean_reward": sum(teacher) / len(teacher),
        "wall_s": round(time.perf_counter() - t, 1), "fits": fit,
    })  # fmt: skip


def _fit(s: _Session, demos: Any, scale: Any) -> dict[str, float]:
    """One supervised fit of the policy (and value) network on every episode so far."""
    from agents.training.imitation import clone

    ws = s.cfg.warm_start
    fit = clone(s.model, demos, scale, ws.epochs, ws.batch_size, ws.learning_rate, ws.value,
                s.cfg.seed)  # fmt: skip
    s.log(f"warm start: cloned {fit['samples']} steps; greedy action = label on "
          f"{fit['action_match']:.1%}")  # fmt: skip
    save_model_atomic(s.model, s.out / CLONE)
    return fit


def _save_checkpoint(s: _Session, ev: Evaluation) -> Path:
    snap = RunState.from_json(s.state.to_json())
    snap.wall_before_s = s.clock()
    try:
        envs = s.venv.env_method("get_state")
    except Exception:  # noqa: BLE001 - SubprocVecEnv workers die with Ctrl-C
        envs = []
    return write_checkpoint(s.out, s.model, s.vn, snap, envs, s.cfg.checkpoints.keep,
                            ev.save_extra)  # fmt: skip


def _learn(s: _Session, cbs: list[Any], resume: bool) -> None:
    """`PPO.learn` over the remaining budget; Ctrl-C and SIGTERM end it as `interrupted`."""
    from stable_baselines3.common.callbacks import CallbackList

    cfg, model, state = s.cfg, s.model, s.state
    remaining = cfg.budget.timesteps - model.num_timesteps
    s.log(f"training PPO on {s.sc.name} ({', '.join(cfg.envs.patterns)}), {cfg.envs.n_envs} envs, "
          f"{model.num_timesteps}/{cfg.budget.timesteps} steps -> {s.out}")  # fmt: skip
    state.stop_kind = state.stop_reason = None
    prev_term = _sigterm_as_interrupt()
    try:
        if remaining > 0:
            model.learn(remaining, callback=CallbackList(cbs), reset_num_timesteps=not resume)
    except BaseException as e:
        if not is_interrupt(e):  # also one that landed inside a compiled function
            raise
        state.stop_kind = "interrupted"
        state.stop_reason = f"interrupted (Ctrl-C or SIGTERM) at {model.num_timesteps} steps"
        s.log(f"interrupted at {model.num_timesteps} steps: saving a checkpoint and model.zip")
    finally:
        if prev_term is not None:
            signal.signal(signal.SIGTERM, prev_term)


def _stop_kind(s: _Session, max_s: float | None) -> None:
    """Why training stopped, when no callback said so: the wall or the step budget."""
    state, n = s.state, int(s.model.num_timesteps)
    if state.stop_kind is not None:
        return
    if max_s is not None and s.clock() >= max_s:
        state.stop_kind = "time_budget"
        state.stop_reason = f"wall budget reached at {n} steps"
    else:
        state.stop_kind = "timesteps"
        state.stop_reason = f"budget of {s.cfg.budget.timesteps} steps reached ({n} steps)"


def _finish(s: _Session, ev: Evaluation, timing: Timing) -> TrainResult:
    """A last evaluation if the policy changed, the final model, a last checkpoint,
    ``stopped.json`` and the figure."""
    out, state, model, vn, cfg = s.out, s.state, s.model, s.vn, s.cfg
    n = int(model.num_timesteps)
    if vn is not None:
        vn.training = False  # the final model and the best share these statistics
    if ev.model is None:
        ev.init_callback(model)
    if state.stop_kind != "interrupted" and ev.changed():
        kind, reason = state.stop_kind, state.stop_reason
        ev.evaluate()
        if state.stop_kind == "converged" and kind != "converged":
            reason = f"{reason}; the final evaluation also met the convergence rule"
        state.stop_kind, state.stop_reason = kind, reason
    save_model_atomic(model, out / "model.zip")
    if vn is not None:
        save_vecnormalize_atomic(vn, out / VECNORMALIZE)
    if not checkpoints(out) or checkpoints(out)[-1].name != f"step-{n:09d}":
        _save_checkpoint(s, ev)
    speed = timing.summary()
    speed["eval_s"] = round(sum(r.extra.get("eval_s", 0.0) for r in state.history), 3)
    result = TrainResult(out, n, state.stop_kind or "", state.stop_reason or "",
                         round(s.clock(), 3), state.best_mean, state.best_timesteps,
                         state.best_wall_s, state.first_beats, speed)  # fmt: skip
    write_json(out / "stopped.json", _stopped(result, state, cfg))
    s.log(f"stopped ({state.stop_kind}): {state.stop_reason}")
    if cfg.logging.figure:
        try:
            from agents.training.train_figure import training_figure

            result.files["figure"] = training_figure(out)[0]
        except Exception as e:  # noqa: BLE001 - a figure must not lose a finished run
            s.log(f"training figure failed: {type(e).__name__}: {e}")
    result.files.update({"model": out / "model.zip", "best_model": out / "best_model.zip",
                         "stopped": out / "stopped.json"})  # fmt: skip
    return result


def _sigterm_as_interrupt() -> Any:
    """SIGTERM (a job scheduler, `kill`) ends training like Ctrl-C: checkpoint, model, reason."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _stopped(res: TrainResult, state: RunState, cfg: TrainConfig) -> dict[str, Any]:
    return {
        "kind": res.stop_kind, "reason": res.stop_reason, "timesteps": res.timesteps,
        "wall_s": res.wall_s, "evaluations": len(state.history),
        "best": {"mean_reward": res.best_mean_reward, "timesteps": res.best_timesteps,
                 "wall_s": res.best_wall_s, "index": state.best_index},
        "baseline": cfg.evaluation.baseline,
        "first_beats_baseline": res.first_beats_baseline,
        "last_convergence_check": state.last_decision,
        "speed": res.speed,
    }  # fmt: skip

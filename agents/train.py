"""`kisim train`: stable-baselines3 PPO on `KisimEnv` over the twin (docs/training.md).

`train(scenario, config, out)` reads top to bottom: prepare OUT (or reopen it for
``--resume``), start the baseline's evaluation episodes in a worker process, build the
vectorised training envs and their VecNormalize, build (or load) PPO, attach the
callbacks (`agents.callbacks`), learn until the budget, the wall limit, the stopping
rule (`agents.convergence`) or Ctrl-C, then write the final model, a last checkpoint,
``stopped.json`` and the training figure.

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

import csv
import hashlib
import json
import math
import multiprocessing as mp
import os
import pickle
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.callbacks import (
    RNG,
    STATE,
    VECNORMALIZE,
    Budget,
    Checkpoints,
    Clock,
    EpisodeKPIs,
    EpisodeResult,
    Evaluation,
    FreezeNormalizer,
    PolicyEvaluator,
    RunState,
    Timing,
    baseline_results,
    checkpoints,
    save_model_atomic,
    save_vecnormalize_atomic,
    write_checkpoint,
)
from agents.convergence import ConvergenceRule, EvalRecord
from agents.rundir import read_json, write_json
from agents.train_config import TrainConfig
from agents.training_env import EVAL_SEED_BASE, Ranges, make_vec_env
from kisim.config import Scenario, resolved_json
from kisim.errors import ConfigError, KisimError

FORMAT = "kisim-train/1"
Baseline = list[EpisodeResult] | Callable[[], list[EpisodeResult]]
MARKERS = ("model.zip", "best_model.zip", "checkpoints", "config.json")


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


# --------------------------------------------------------------------------- OUT


def fingerprint(sc: Scenario) -> str:
    return hashlib.sha256(resolved_json(sc).encode()).hexdigest()


def _versions() -> dict[str, str]:
    import gymnasium
    import stable_baselines3
    import torch

    import kisim

    return {"kisim": getattr(kisim, "__version__", "?"),
            "stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__,
            "gymnasium": gymnasium.__version__, "python": sys.version.split()[0]}  # fmt: skip


def write_config(out: Path, sc: Scenario, cfg: TrainConfig, scenario_file: str | None) -> None:
    write_json(out / "config.json", {
        "format": FORMAT, "scenario_file": scenario_file, "fingerprint": fingerprint(sc),
        "train": cfg.model_dump(mode="json"), "scenario": json.loads(resolved_json(sc)),
        "versions": _versions(),
    })  # fmt: skip


def read_run_config(out: Path) -> tuple[Scenario, TrainConfig, dict[str, Any]]:
    """The scenario and training config a run in OUT was started with."""
    p = out / "config.json"
    if not p.is_file():
        raise KisimError(f"{out}: no config.json (not a kisim train output)")
    d = read_json(p)
    if d.get("format") != FORMAT:
        raise KisimError(f"{p}: format {d.get('format')!r}, expected {FORMAT!r}")
    return Scenario.model_validate(d["scenario"]), TrainConfig.model_validate(d["train"]), d


def check_fresh_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise KisimError(f"{out}: exists and is not a directory")
    found = [m for m in MARKERS if (out / m).exists()]
    if found:
        raise KisimError(f"{out}: already holds a training run ({', '.join(found)}); "
                         "use --resume to continue it or another --out")  # fmt: skip


def latest_checkpoint(out: Path) -> Path:
    cks = checkpoints(out)
    if not cks:
        raise KisimError(f"--resume: no checkpoint in {out / 'checkpoints'}")
    return cks[-1]


def eval_episodes(patterns: Sequence[str], per_pattern: int) -> list[tuple[str, int]]:
    """Held-out episodes: every pattern x seeds EVAL_SEED_BASE + 0..n-1 (pattern-major)."""
    return [(p, EVAL_SEED_BASE + k) for p in patterns for k in range(per_pattern)]


# --------------------------------------------------------------------------- baseline


def _baseline(out: Path, sc: Scenario, policy: str, episodes: list[tuple[str, int]],
              log: Callable[[str], None]) -> tuple[Baseline, Any]:  # fmt: skip
    """Cached results, or a thunk waiting on a worker process computing them (and the pool)."""
    path = out / "eval_baseline.json"
    key = {"policy": policy, "episodes": [list(e) for e in episodes],
           "fingerprint": fingerprint(sc)}  # fmt: skip
    if path.is_file():
        d = read_json(path)
        if all(d.get(k) == v for k, v in key.items()):
            return [EpisodeResult(**r) for r in d["results"]], None
    data = json.loads(resolved_json(sc))
    pool = None
    try:
        # the worker ignores Ctrl-C: the parent decides what to save and terminates it
        pool = mp.get_context("fork").Pool(1, initializer=signal.signal,
                                           initargs=(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
        ares = pool.apply_async(baseline_results, (data, policy, episodes))
    except (ValueError, OSError):  # no fork here: compute inline
        ares = None

    def get() -> list[EpisodeResult]:
        t = time.perf_counter()
        res = ares.get() if ares is not None else baseline_results(data, policy, episodes)
        if pool is not None:
            pool.terminate()  # the worker holds a copy of this process's memory
        waited = time.perf_counter() - t
        if waited > 0.5:
            log(f"waited {waited:.1f} s for the {policy} baseline episodes")
        write_json(path, {**key, "results": [r.__dict__ for r in res]})
        return res

    return get, pool


# --------------------------------------------------------------------------- progress.csv


def _appending_csv(path: Path, keep_upto: int | None) -> Any:
    """SB3's CSV writer continuing an existing file (rows past `keep_upto` steps dropped)."""
    from stable_baselines3.common.logger import CSVOutputFormat

    if keep_upto is not None and path.is_file():
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        if rows:
            head, body = rows[0], rows[1:]
            i = head.index("time/total_timesteps") if "time/total_timesteps" in head else None
            keep = [r for r in body if i is None or not r[i] or float(r[i]) <= keep_upto]
            with path.open("w", newline="") as f:
                csv.writer(f, lineterminator="\n").writerows([head, *keep])

    class Appending(CSVOutputFormat):
        def __init__(self, filename: str) -> None:
            exists = os.path.isfile(filename) and os.path.getsize(filename) > 0
            self.file = open(filename, "r+" if exists else "w+")  # noqa: SIM115 - closed by SB3
            self.keys = []
            if exists:
                self.keys = next(csv.reader([self.file.readline()]))
                self.file.seek(0, os.SEEK_END)
            self.separator, self.quotechar = ",", '"'

    return Appending(str(path))


def _logger(out: Path, cfg: TrainConfig, keep_upto: int | None, log: Callable[[str], None]) -> Any:
    from stable_baselines3.common.logger import HumanOutputFormat, Logger

    formats: list[Any] = [_appending_csv(out / "progress.csv", keep_upto)]
    if cfg.logging.verbose:
        formats.append(HumanOutputFormat(sys.stdout))
    if cfg.logging.tensorboard:
        try:
            from stable_baselines3.common.logger import TensorBoardOutputFormat

            formats.append(TensorBoardOutputFormat(str(out / "tb")))
        except (ImportError, AssertionError):  # SB3 asserts when tensorboard is missing
            log("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
    return Logger(str(out), formats)


# --------------------------------------------------------------------------- the model


def _new_model(cfg: TrainConfig, venv: Any) -> Any:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.utils import LinearSchedule

    p = cfg.ppo
    lr: Any = p.learning_rate
    if p.lr_schedule == "linear":
        lr = LinearSchedule(p.learning_rate, 0.0, 1.0)
    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[p.activation]
    return PPO(
        "MlpPolicy", venv, learning_rate=lr, n_steps=p.n_steps, batch_size=p.batch_size,
        n_epochs=p.n_epochs, gamma=p.gamma, gae_lambda=p.gae_lambda, clip_range=p.clip_range,
        ent_coef=p.ent_coef, vf_coef=p.vf_coef, max_grad_norm=p.max_grad_norm,
        target_kl=p.target_kl,
        policy_kwargs={"net_arch": {"pi": list(p.net_arch), "vf": list(p.net_arch)},
                       "activation_fn": act},
        seed=cfg.seed, device="cpu", verbose=0,
    )  # fmt: skip


def _ranges(cfg: TrainConfig) -> Ranges:
    dr = cfg.domain_randomization
    if not dr.enabled:
        return Ranges()
    return Ranges(dr.service_time, dr.startup, dr.scrape_interval)


def _eval_line(rec: EvalRecord, baseline: str, decision: str) -> str:
    pats = rec.extra["patterns"]
    beat = ",".join(p for p, v in pats.items() if v["beats_baseline"]) or "none"
    kl = f"KL {rec.kl:.1e} drift {rec.drift:.0%}" if math.isfinite(rec.kl) else "KL -"
    return (f"eval {rec.index:3d} @ {rec.timesteps:7d} steps {rec.wall_s / 60:5.1f} min: "
            f"reward {rec.mean_reward:6.3f} ({baseline} {rec.extra['baseline_mean_reward']:.3f})"
            f"{' best' if rec.extra.get('best') else ''}; "
            f"beats {baseline} on {beat}; {kl}")  # fmt: skip


# --------------------------------------------------------------------------- train


def train(sc: Scenario, cfg: TrainConfig, out: Path, *, resume: bool = False,
          scenario_file: str | None = None, t0: float | None = None,
          log: Callable[[str], None] = _stderr) -> TrainResult:  # fmt: skip
    """Train PPO on `sc` with `cfg` into `out` (see the module doc); resumable."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.vec_env import VecNormalize

    t0 = time.perf_counter() if t0 is None else t0
    out = Path(out)
    torch.set_num_threads(cfg.envs.torch_threads)
    ck: Path | None = None
    if resume:
        ck = latest_checkpoint(out)
        saved = read_json(ck / STATE)
        state = RunState.from_json(saved["run"])
        log(f"resuming from {ck} ({saved['timesteps']} steps, {state.wall_before_s / 60:.1f} min)")
    else:
        check_fresh_out(out)
        out.mkdir(parents=True, exist_ok=True)
        state = RunState()
    write_config(out, sc, cfg, scenario_file)
    clock = Clock(state, t0)
    patterns = list(cfg.envs.patterns)
    episodes = eval_episodes(patterns, cfg.evaluation.seeds_per_pattern)
    base, pool = _baseline(out, sc, cfg.evaluation.baseline, episodes, log)
    venv = vn = model = None
    try:
        venv = make_vec_env(sc, patterns, cfg.envs.n_envs, None if resume else cfg.seed,
                            cfg.envs.schedule, _ranges(cfg), cfg.envs.vec_env)  # fmt: skip
        norm = cfg.normalize
        if norm.obs or norm.reward:
            if ck is not None and (ck / VECNORMALIZE).is_file():
                vn = VecNormalize.load(str(ck / VECNORMALIZE), venv)
            else:
                vn = VecNormalize(venv, norm_obs=norm.obs, norm_reward=norm.reward,
                                  clip_obs=norm.clip_obs, clip_reward=norm.clip_reward,
                                  gamma=cfg.ppo.gamma)  # fmt: skip
            venv = vn
        if ck is not None:
            model = PPO.load(str(ck / "model.zip"), env=venv, device="cpu")
            _restore_rng(ck, venv, saved["envs"])
            if not saved["envs"]:  # not saved (workers gone at Ctrl-C): a fresh stream
                venv.seed(cfg.seed + 7919 * int(saved["timesteps"]))
        else:
            model = _new_model(cfg, venv)
        model.set_logger(_logger(out, cfg, model.num_timesteps if resume else None, log))

        evaluator = PolicyEvaluator(sc, patterns, episodes)
        rule = _rule(cfg)
        warm = norm.warmup_steps
        ev = Evaluation(out, state, clock, evaluator, base, patterns, cfg.evaluation.every_steps,
                        rule, vn, ready=lambda n: vn is None or not norm.obs or n >= warm,
                        level=cfg.convergence.level)  # fmt: skip
        if ck is not None:
            ev.load_extra(ck, model)
        baseline_name = cfg.evaluation.baseline
        ev_evaluate = ev.evaluate

        def evaluate_and_log() -> bool:
            ok = ev_evaluate()
            log(_eval_line(state.history[-1], baseline_name, state.last_decision))
            return ok

        ev.evaluate = evaluate_and_log  # type: ignore[method-assign]

        def save_ckpt() -> Path:
            snap = RunState.from_json(state.to_json())
            snap.wall_before_s = clock()
            try:
                envs = venv.env_method("get_state")
            except Exception:  # noqa: BLE001 - SubprocVecEnv workers die with Ctrl-C
                envs = []
            return write_checkpoint(out, model, vn, snap, envs, cfg.checkpoints.keep,
                                    ev.save_extra)  # fmt: skip

        timing = Timing()
        ev.timing = timing
        cp = Checkpoints(out, cfg.checkpoints.every_steps, cfg.checkpoints.keep, save_ckpt)
        cp.timing = timing
        cbs: list[Any] = [timing]
        if vn is not None:
            cbs.append(FreezeNormalizer(vn, warm))
        max_s = cfg.budget.max_minutes * 60 if cfg.budget.max_minutes else None
        budget = Budget(state, clock, cfg.budget.timesteps, max_s)
        cbs += [EpisodeKPIs(cfg.envs.n_envs), budget, ev, cp]
        remaining = cfg.budget.timesteps - model.num_timesteps
        log(f"training PPO on {sc.name} ({', '.join(patterns)}), {cfg.envs.n_envs} envs, "
            f"{model.num_timesteps}/{cfg.budget.timesteps} steps -> {out}")  # fmt: skip
        state.stop_kind = state.stop_reason = None
        prev_term = _sigterm_as_interrupt()
        try:
            if remaining > 0:
                model.learn(remaining, callback=CallbackList(cbs), reset_num_timesteps=not resume)
        except KeyboardInterrupt:
            state.stop_kind = "interrupted"
            state.stop_reason = f"interrupted (Ctrl-C or SIGTERM) at {model.num_timesteps} steps"
            log(f"interrupted at {model.num_timesteps} steps: saving a checkpoint and model.zip")
        finally:
            if prev_term is not None:
                signal.signal(signal.SIGTERM, prev_term)
        n = int(model.num_timesteps)
        if state.stop_kind is None:
            if max_s is not None and clock() >= max_s:
                state.stop_kind = "time_budget"
                state.stop_reason = f"wall budget reached at {n} steps"
            else:
                state.stop_kind = "timesteps"
                state.stop_reason = f"budget of {cfg.budget.timesteps} steps reached ({n} steps)"
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
            save_ckpt()
        wall = clock()
        speed = timing.summary()
        speed["eval_s"] = round(sum(r.extra.get("eval_s", 0.0) for r in state.history), 3)
        result = TrainResult(out, n, state.stop_kind or "", state.stop_reason or "", round(wall, 3),
                             state.best_mean, state.best_timesteps, state.best_wall_s,
                             state.first_beats, speed)  # fmt: skip
        write_json(out / "stopped.json", _stopped(result, state, cfg))
        log(f"stopped ({state.stop_kind}): {state.stop_reason}")
        if cfg.logging.figure:
            try:
                from agents.train_figure import training_figure

                result.files["figure"] = training_figure(out)[0]
            except Exception as e:  # noqa: BLE001 - a figure must not lose a finished run
                log(f"training figure failed: {type(e).__name__}: {e}")
        result.files.update({"model": out / "model.zip", "best_model": out / "best_model.zip",
                             "stopped": out / "stopped.json"})  # fmt: skip
        return result
    finally:
        if pool is not None:
            pool.terminate()
        if venv is not None:
            try:
                venv.close()
            except Exception:  # noqa: BLE001 - dead SubprocVecEnv workers after Ctrl-C
                pass
        if model is not None and model.logger is not None:
            model.logger.close()


def _sigterm_as_interrupt() -> Any:
    """SIGTERM (a job scheduler, `kill`) ends training like Ctrl-C: checkpoint, model, reason."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _rule(cfg: TrainConfig) -> ConvergenceRule | None:
    c = cfg.convergence
    if not c.enabled:
        return None
    return ConvergenceRule(window=c.window, min_evaluations=c.min_evaluations,
                           min_timesteps=c.min_timesteps, level=c.level, min_delta=c.min_delta,
                           kl_max=c.kl_max, drift_max=c.drift_max)  # fmt: skip


def _restore_rng(ck: Path, venv: Any, env_states: list[dict[str, Any]]) -> None:
    import torch

    p = ck / RNG
    if p.is_file():
        with p.open("rb") as f:
            rng = pickle.load(f)
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
    for i, s in enumerate(env_states):
        venv.env_method("set_state", s, indices=[i])


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


def resolve_run(out: Path, resume: bool, scenario: Path | None, config: Path | None,
                patterns: list[str] | None, timesteps: int | None,
                seed: int | None) -> tuple[Scenario, TrainConfig, str | None]:  # fmt: skip
    """What to train: the files and flags of a new run, or the stored run with its budget
    raised for ``--resume`` (other flags must agree with the stored run)."""
    from agents.train_config import load_train_config
    from kisim.config import load_scenario
    from kisim.env import DEFAULT_SCENARIO

    if resume:
        sc, cfg, d = read_run_config(out)
        flags = (("--patterns", patterns, cfg.envs.patterns), ("--seed", seed, cfg.seed))
        for flag, given, stored in flags:
            if given is not None and given != stored:
                raise ConfigError(f"{flag} {given} differs from the run's {stored} "
                                  f"({out}/config.json); a resumed run keeps its "
                                  "settings")  # fmt: skip
        skip: Any = {"budget": True, "seed": True, "envs": {"patterns"}}  # flags, checked above
        if config is not None and load_train_config(config).model_dump(exclude=skip) != \
                cfg.model_dump(exclude=skip):  # fmt: skip
            raise ConfigError(f"--config {config} differs from the run's ({out}/config.json)")
        if scenario is not None and fingerprint(load_scenario(scenario)) != d.get("fingerprint"):
            raise ConfigError(f"--scenario {scenario} differs from the run's ({out}/config.json)")
        if timesteps is not None:
            budget = cfg.budget.model_copy(update={"timesteps": timesteps})
            cfg = cfg.model_copy(update={"budget": budget})
        return sc, cfg, d.get("scenario_file")
    path = scenario if scenario is not None else DEFAULT_SCENARIO
    sc = load_scenario(path)
    over: dict[str, Any] = {}
    if patterns is not None:
        over["envs.patterns"] = patterns
    if timesteps is not None:
        over["budget.timesteps"] = timesteps
    if seed is not None:
        over["seed"] = seed
    return sc, load_train_config(config, **over), str(path)

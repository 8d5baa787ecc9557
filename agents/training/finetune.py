"""Fine-tuning a twin-trained PPO policy on real serving (`kisim train --real`).

The twin gives the policy its shape; a few real episodes correct what the twin got
wrong. Real episodes are slow and someone's cluster pays for them, so this is careful
rather than fast:

* the model continues from ``--from`` (its ``vecnormalize.pkl`` next to it, frozen, so
  the policy sees observations and rewards scaled as in training);
* a smaller learning rate (default 1e-4, a tenth of the twin's) and one rollout per
  real episode (``n_steps`` = the episode's agent steps, one env: runs are sequential);
* hard replica bounds: ``max_replicas`` lowers pools' bounds in the scenario, which
  the action preset and the backend both enforce;
* after every episode a checkpoint (``checkpoints/episode-K/``: model, statistics,
  state) is written atomically and ``model.zip`` replaced, and the episode's KPIs
  appended to ``episodes.csv``; ``resume`` continues from the newest checkpoint;
* the backend is closed on exit, error or Ctrl-C (the caller's `make_backend` result
  is a context: replicas restored, servers stopped).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.policies.model_files import NORM_STATS, NormStats, load_ppo, stats_beside
from agents.policies.ppo import VECNORMALIZE
from agents.training.checkpoints import fresh_model_dir
from kisim.core.backend import Backend
from kisim.core.config import Scenario, override, resolved_json
from kisim.core.errors import KisimError
from kisim.core.rundir import atomic_write, write_json
from kisim.core.window import Window

CHECKPOINTS = "checkpoints"
KPI_COLUMNS = ("episode", "pattern", "seed", "reward", "slo_violation_rate", "gpu_replica_s",
               "cpu_replica_s", "wall_s")  # fmt: skip


@dataclass(frozen=True)
class FinetuneSettings:
    """What `kisim train --real` was asked for (stored in config.json; fixed on resume)."""

    source: str  # the twin-trained model.zip / best_model.zip
    backend: str  # local | kubernetes (or "twin" in tests)
    episodes: int = 4
    learning_rate: float = 1e-4
    n_epochs: int = 5
    patterns: tuple[str, ...] = ()  # () = the scenario's own pattern
    max_replicas: tuple[tuple[str, int], ...] = ()  # hard bounds (pool, n)
    seed: int = 0


@dataclass
class FinetuneResult:
    out: Path
    episodes_done: int
    rewards: list[float]
    wall_s: float


def bounded(sc: Scenario, max_replicas: Sequence[tuple[str, int]]) -> Scenario:
    """The scenario with pools' upper bounds lowered (never raised) to the hard bounds."""
    d: dict[str, Any] = {}
    for pool, n in max_replicas:
        if pool not in sc.pools:
            raise KisimError(f"--max-replicas {pool}={n}: no pool '{pool}' in the scenario")
        cfg = sc.pools[pool]
        hi = max(cfg.min_replicas, min(cfg.max_replicas, n))
        d[f"pools.{pool}.max_replicas"] = hi
        d[f"pools.{pool}.replicas"] = min(cfg.replicas, hi)
    return override(sc, "--max-replicas", **d) if d else sc


def _checkpoints(out: Path) -> list[Path]:
    d = out / CHECKPOINTS
    found = [p for p in d.glob("episode-*") if (p / "state.json").is_file()] if d.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _save_checkpoint(out: Path, model: Any, vn: Any, state: dict[str, Any]) -> None:
    """checkpoints/episode-K/ built in a temporary folder and renamed; model.zip replaced."""
    k = state["episodes_done"]
    ck = out / CHECKPOINTS
    ck.mkdir(parents=True, exist_ok=True)
    # not mkdtemp: its 0700 would stay on the result
    tmp = fresh_model_dir(ck / f".episode-{k}.{os.getpid()}.tmp", model, vn)
    write_json(tmp / "state.json", state)
    final = ck / f"episode-{k}"
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for name in ("model.zip", VECNORMALIZE, NORM_STATS) if vn is not None else ("model.zip",):
        t = out / f".{name}.{os.getpid()}.tmp"
        shutil.copyfile(final / name, t)
        os.replace(t, out / name)


def discard_unstarted(out: Path, existed: bool) -> None:
    """After a failure before the first real episode finished: remove what the attempt
    wrote (config, KPI header, work folder), and OUT itself if it made it, so a rerun
    starts cleanly instead of finding a run to --resume that never ran."""
    if _checkpoints(out):
        return
    for name in ("config.json", "episodes.csv"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / ".work", ignore_errors=True)
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    if not existed:
        shutil.rmtree(out, ignore_errors=True)


def _fixed(cfg: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run must share with the stored one: all but the episode budget."""
    return {**cfg, "settings": {k: v for k, v in cfg["settings"].items() if k != "episodes"}}


class EpisodeLog(gym.Wrapper):
    """Keeps each finished episode's KPIs (SB3's vector env resets before callbacks see it)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.finished: list[dict[str, Any]] = []
        self._windows: list[Window] = []
        self._reward = 0.0

    def reset(self, **kw: Any) -> Any:
        self._windows, self._reward = [], 0.0
        return self.env.reset(**kw)

    def step(self, action: Any) -> Any:
        obs, r, terminated, truncated, info = self.env.step(action)
        self._windows.append(info["window"])
        self._reward += float(r)
        if terminated or truncated:
            ws = self._windows
            answered = sum(w.served + w.errors for w in ws)
            k: Any = self.env.unwrapped
            self.finished.append({
                "pattern": k.pattern_name, "seed": k.twin_seed, "reward": self._reward,
                "slo_violation_rate": sum(w.slo_violations for w in ws) / answered
                if answered else math.nan,
                "gpu_replica_s": sum(w.gpu_replica_s for w in ws),
                "cpu_replica_s": sum(w.cpu_replica_s for w in ws)})  # fmt: skip
        return obs, r, terminated, truncated, info


def finetune(sc: Scenario, settings: FinetuneSettings, out: Path,
             make_backend: Callable[[Path], Backend], resume: bool = False,
             echo: Callable[[str], None] = print,
             trust_model: bool = False) -> FinetuneResult:  # fmt: skip
    """Continue training `settings.source` on the backend `make_backend(workdir)` builds."""
    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from agents.training.training_env import TrainingEnv
    from kisim.env.environment import KisimEnv

    out.mkdir(parents=True, exist_ok=True)
    sc = bounded(sc, settings.max_replicas)
    cfg = json.loads(json.dumps({"format": "kisim-finetune/1", "settings": asdict(settings),
                                 "scenario": json.loads(resolved_json(sc))}))  # fmt: skip
    cks = _checkpoints(out)
    if resume:
        if not cks:
            raise KisimError(f"{out}: no checkpoint to resume from")
        stored = json.loads((out / "config.json").read_text())
        if _fixed(stored) != _fixed(cfg):
            raise KisimError(f"{out}: --resume with other settings than the stored run's "
                             "(only --episodes may change)")  # fmt: skip
        write_json(out / "config.json", cfg)
    elif cks or (out / "config.json").exists():
        raise KisimError(f"{out}: holds a fine-tuning run already (use --resume or another --out)")
    else:
        write_json(out / "config.json", cfg)
    src = cks[-1] / "model.zip" if cks else Path(settings.source)
    if not src.is_file():
        raise KisimError(f"--from {src}: no such model file")
    state = json.loads((cks[-1] / "state.json").read_text()) if cks else \
        {"episodes_done": 0, "rewards": [], "wall_s": 0.0}  # fmt: skip
    if state["episodes_done"] >= settings.episodes:
        echo(f"{out}: {state['episodes_done']} episodes done already; nothing to do")
        return FinetuneResult(out, state["episodes_done"], state["rewards"], state["wall_s"])
    kpis = out / "episodes.csv"
    if not kpis.is_file():
        atomic_write(kpis, ",".join(KPI_COLUMNS) + "\n")

    torch.set_num_threads(1)
    steps = max(1, math.ceil(sc.duration_s / sc.env.step_s - 1e-9))
    pats = list(settings.patterns) or [sc.traffic.pattern.name]
    log = EpisodeLog(TrainingEnv(KisimEnv(sc, make_backend(out / ".work"), patterns=pats), pats))
    venv: Any = DummyVecEnv([lambda: log])
    vn = None
    try:
        stats = stats_beside(src, trust_model)
        if stats is not None:
            if isinstance(stats, NormStats):
                vn = stats.into(VecNormalize(venv))
            else:
                vn = stats
                vn.set_venv(venv)
            vn.training = False  # frozen: the policy keeps the scale it was trained with
            venv = vn
        lr = settings.learning_rate
        try:
            model = load_ppo(src, trust_model, env=venv, custom_objects={
                "learning_rate": lr, "lr_schedule": lambda _: lr, "n_steps": steps,
                "batch_size": steps, "n_epochs": settings.n_epochs})  # fmt: skip
        except KisimError:
            raise
        except Exception as e:  # noqa: BLE001 - a corrupt file or another env's model is input
            raise KisimError(f"--from {src}: cannot continue this model "
                             f"({type(e).__name__}: {e})") from None  # fmt: skip
        model.set_random_seed(settings.seed + state["episodes_done"])
        while state["episodes_done"] < settings.episodes:
            t_ep = time.monotonic()
            model.learn(total_timesteps=steps, reset_num_timesteps=False)
            ep = log.finished.pop(0)
            state["episodes_done"] += 1
            state["rewards"].append(ep["reward"])
            state["wall_s"] += time.monotonic() - t_ep
            _save_checkpoint(out, model, vn, state)
            row = {**ep, "episode": state["episodes_done"], "wall_s": time.monotonic() - t_ep}
            with kpis.open("a") as f:
                f.write(",".join(str(row[c]) for c in KPI_COLUMNS) + "\n")
            echo(f"episode {state['episodes_done']}/{settings.episodes} ({ep['pattern']}): "
                 f"reward {ep['reward']:.3f}, SLO violations {ep['slo_violation_rate']:.1%}; "
                 f"checkpoint written")  # fmt: skip
    finally:
        venv.close()  # closes the KisimEnv, hence the backend: replicas restored, servers gone
        shutil.rmtree(out / ".work", ignore_errors=True)
    return FinetuneResult(out, state["episodes_done"], state["rewards"], state["wall_s"])

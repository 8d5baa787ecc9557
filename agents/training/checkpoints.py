"""Checkpoints of `kisim train` (what ``--resume`` continues from), written atomically.

``OUT/checkpoints/step-NNNNNNNNN/`` holds ``model.zip`` (with the optimizer state and
step counter), ``vecnormalize.pkl``, ``state.json`` (the `RunState` and each training
env's episode stream), ``rng.pkl`` (torch / numpy / python RNG states) and the last
evaluated policy; it is built in a temporary folder and renamed into place, so a crash
never leaves half a checkpoint. Models and statistics outside checkpoints are written
to a temporary name and renamed too.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.policies.model_files import NORM_STATS, save_stats
from agents.training.callbacks import Timing, crossed
from agents.training.run_state import RunState
from kisim.core.errors import KisimError

CHECKPOINTS = "checkpoints"
STATE = "state.json"
RNG = "rng.pkl"
VECNORMALIZE = "vecnormalize.pkl"
EVAL_POLICY = "eval_policy.pt"


def save_model_atomic(model: Any, path: Path) -> None:
    """`model.save` to a temporary name in the same folder, then rename (never half a file)."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.zip")
    model.save(str(tmp))
    os.replace(tmp, path)


def save_pickle_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        pickle.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_vecnormalize_atomic(vn: Any, path: Path) -> None:
    """The pickle (`--resume`, trusted models) and, beside it, the plain arrays that
    ``ppo:PATH`` loads by default (agents.policies.model_files)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    vn.save(str(tmp))
    os.replace(tmp, path)
    save_stats(vn, path.with_name(NORM_STATS))


def fresh_model_dir(tmp: Path, model: Any, vecnorm: Any) -> Path:
    """`tmp` emptied and holding the model and its normalisation (pickle for resume, plain
    arrays for loading without unpickling); the caller fills the rest and renames it."""
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save(str(tmp / "model.zip"))
    if vecnorm is not None:
        vecnorm.save(str(tmp / VECNORMALIZE))
        save_stats(vecnorm, tmp / NORM_STATS)
    return tmp


def write_checkpoint(out: Path, model: Any, vecnorm: Any, state: RunState,
                     env_states: list[dict[str, Any]], keep: int,
                     extra: Callable[[Path], None] | None = None) -> Path:  # fmt: skip
    """checkpoints/step-NNNNNNNNN/ built in a temporary folder, then renamed into place."""
    import torch

    root = out / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    n = int(model.num_timesteps)
    final = root / f"step-{n:09d}"
    tmp = fresh_model_dir(root / f".tmp-step-{n:09d}-{os.getpid()}", model, vecnorm)
    rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
           "python": random.getstate()}  # fmt: skip
    with (tmp / RNG).open("wb") as f:
        pickle.dump(rng, f)
    if extra is not None:
        extra(tmp)
    (tmp / STATE).write_text(json.dumps({"timesteps": n, "run": _plain(state.to_json()),
                                         "envs": _plain(env_states)}, indent=1))  # fmt: skip
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in sorted(checkpoints(out))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints (with their state file), oldest first."""
    root = out / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*")
                  if (p / STATE).is_file() and (p / "model.zip").is_file())  # fmt: skip


def latest_checkpoint(out: Path) -> Path:
    """The newest complete checkpoint; a one-line error for ``--resume`` when there is none."""
    cks = checkpoints(out)
    if not cks:
        raise KisimError(f"--resume: no checkpoint in {out / CHECKPOINTS}")
    return cks[-1]


def restore_rng(ck: Path, venv: Any, env_states: list[dict[str, Any]]) -> None:
    """Put back the RNG states and each training env's episode stream of checkpoint `ck`."""
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


def _plain(x: Any) -> Any:
    """JSON-safe copy (numpy scalars/arrays to Python; NaN/inf to None)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


class Checkpoints(BaseCallback):
    """Every `every` steps: model, VecNormalize, run state and RNG states, written atomically."""

    def __init__(self, out: Path, every: int, keep: int, save: Callable[[], Path]) -> None:
        super().__init__()
        self.out, self.every, self.keep, self.save = out, every, keep, save
        self._last = 0
        self.timing: Timing | None = None

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_rollout_start(self) -> None:
        n = self.num_timesteps
        if crossed(n, self._last, self.every):
            self._last = n
            t = time.perf_counter()
            self.save()
            if self.timing is not None:
                self.timing.pause(time.perf_counter() - t)

    def _on_step(self) -> bool:
        return True

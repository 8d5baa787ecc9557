"""The small stable-baselines3 callbacks of `kisim train`: episode KPIs, the normaliser
freeze, the wall/step budget, where the time goes, and a progress bar.

The larger ones have their own modules: the held-out evaluation (best model, stopping
rule) in `agents.training.periodic_eval`, checkpoints in `agents.training.checkpoints`.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.training.run_state import Clock, RunState


def crossed(now: int, last: int, every: int) -> bool:
    """A multiple of `every` steps lies in (last, now]: a periodic task is due."""
    return now // every > last // every


def updates(model: Any) -> int:
    """PPO's count of gradient steps: tells whether the policy changed since a given moment."""
    return int(getattr(model, "_n_updates", 0))


class EpisodeKPIs(BaseCallback):
    """Logs the mean SLO-violation rate and replica-seconds of recent training episodes."""

    def __init__(self, n_envs: int, keep: int = 100) -> None:
        super().__init__()
        self.acc = np.zeros((n_envs, 3))  # violations, answered, replica-seconds
        self.done: deque[tuple[float, float]] = deque(maxlen=keep)

    def _on_step(self) -> bool:
        for i, (info, d) in enumerate(zip(self.locals["infos"], self.locals["dones"], strict=True)):
            w = info.get("window")
            if w is not None:
                self.acc[i] += (w.slo_violations, w.served + w.errors, w.replica_s_total)
            if d:
                v, a, c = self.acc[i]
                self.done.append((v / a if a else math.nan, c))
                self.acc[i] = 0.0
        return True

    def _on_rollout_end(self) -> None:
        if self.done:
            arr = np.asarray(self.done)
            self.logger.record("rollout/slo_violation_rate", float(np.nanmean(arr[:, 0])))
            self.logger.record("rollout/replica_s", float(arr[:, 1].mean()))


class FreezeNormalizer(BaseCallback):
    """Stops VecNormalize's statistics after `warmup` steps (every later model shares them)."""

    def __init__(self, vecnorm: Any, warmup: int) -> None:
        super().__init__()
        self.vecnorm, self.warmup = vecnorm, warmup

    def _on_step(self) -> bool:
        if self.vecnorm.training and self.num_timesteps >= self.warmup:
            self.vecnorm.training = False
        return True


class Budget(BaseCallback):
    """Stops at `timesteps` or `max_s` wall seconds of the whole run."""

    def __init__(self, state: RunState, clock: Clock, timesteps: int, max_s: float | None) -> None:
        super().__init__()
        self.state, self.clock, self.timesteps, self.max_s = state, clock, timesteps, max_s

    def _on_step(self) -> bool:
        if self.max_s is not None and self.clock() >= self.max_s:
            self.state.stop_kind = "time_budget"
            self.state.stop_reason = (f"wall budget of {self.max_s / 60:g} min reached "
                                      f"at {self.num_timesteps} steps")  # fmt: skip
            return False
        return True


class Timing(BaseCallback):
    """Wall time spent collecting rollouts (env + inference) vs learning (gradient updates).

    Evaluation and checkpoint time (`pause`) is taken out of the collection share.
    """

    def __init__(self) -> None:
        super().__init__()
        self.collect_s = self.learn_s = self.pause_s = 0.0
        self.steps = 0
        self._t = time.perf_counter()
        self._n0 = 0
        self._collecting = False

    def _on_training_start(self) -> None:
        self._t = time.perf_counter()
        self._n0 = self.num_timesteps
        self._collecting = False

    def _on_rollout_start(self) -> None:
        now = time.perf_counter()
        self.learn_s += now - self._t
        self._t, self._collecting = now, True

    def _on_rollout_end(self) -> None:
        now = time.perf_counter()
        self.collect_s += now - self._t
        self._t, self._collecting = now, False

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        now = time.perf_counter()
        if self._collecting:
            self.collect_s += now - self._t
        else:
            self.learn_s += now - self._t
        self._t = now
        self.steps = self.num_timesteps - self._n0

    def pause(self, seconds: float) -> None:
        """Evaluation or checkpoint time spent inside a rollout."""
        self.pause_s += seconds

    def summary(self) -> dict[str, float]:
        collect = max(self.collect_s - self.pause_s, 0.0)
        total = collect + self.learn_s
        return {
            "steps": self.steps, "collect_s": round(collect, 3), "learn_s": round(self.learn_s, 3),
            "pause_s": round(self.pause_s, 3),
            "steps_per_s": round(self.steps / total, 1) if total > 0 else math.nan,
            "collect_share": round(collect / total, 3) if total > 0 else math.nan,
        }  # fmt: skip


class Progress(BaseCallback):
    """A tqdm bar on stderr over the step budget, with the wall budget and the best
    evaluation reward so far: long demo trainings show that they move."""

    def __init__(self, state: RunState, clock: Clock, timesteps: int,
                 max_s: float | None) -> None:  # fmt: skip
        super().__init__()
        self.state, self.clock, self.total, self.max_s = state, clock, timesteps, max_s
        self.bar: Any = None
        self._shown = 0

    def _on_training_start(self) -> None:
        from tqdm import tqdm

        self._shown = self.num_timesteps
        self.bar = tqdm(total=self.total, initial=self._shown, desc="train", unit="step",
                        file=sys.stderr, dynamic_ncols=True, smoothing=0.1)  # fmt: skip

    def _on_rollout_end(self) -> None:
        if self.bar is None:
            return
        self.bar.update(self.num_timesteps - self._shown)
        self._shown = self.num_timesteps
        post = {"min": f"{self.clock() / 60:.1f}" + (f"/{self.max_s / 60:g}" if self.max_s else "")}
        if self.state.history:
            post["best"] = f"{self.state.best_mean:.3f}"
        self.bar.set_postfix(post, refresh=True)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.close()

    def write(self, line: str) -> None:
        """Print a line above the bar (or plainly when there is none)."""
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

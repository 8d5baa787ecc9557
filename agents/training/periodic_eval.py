"""The periodic held-out evaluation of `kisim train`: the callback that, every
`evaluation.every_steps` right after a PPO update, plays the current policy
deterministically on the held-out episodes (`agents.training.held_out`), compares it with the
baseline per pattern, keeps ``best_model.zip`` by that evaluation (never by training
reward), measures how far the policy moved (`agents.training.policy_divergence`) and asks the
stopping rule (`agents.training.convergence`) whether training is done.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.training.callbacks import Timing, crossed, updates
from agents.training.checkpoints import (
    EVAL_POLICY,
    VECNORMALIZE,
    save_model_atomic,
    save_vecnormalize_atomic,
)
from agents.training.convergence import ConvergenceRule, EvalRecord, half_width
from agents.training.held_out import EpisodeResult, PolicyEvaluator
from agents.training.policy_divergence import policy_divergence
from agents.training.run_state import Clock, RunState
from kisim.core.rundir import write_json


class Evaluation(BaseCallback):
    """Every `every` steps: evaluate, compare with the baseline, keep the best, check convergence.

    The baseline's results come from `baseline` (a list, or a thunk waiting on a worker
    process that computes them while training starts); they are fixed for the run.
    """

    def __init__(self, out: Path, state: RunState, clock: Clock, evaluator: PolicyEvaluator,
                 baseline: list[EpisodeResult] | Callable[[], list[EpisodeResult]],
                 patterns: Sequence[str], every: int,
                 rule: ConvergenceRule | None, vecnorm: Any, ready: Callable[[int], bool],
                 level: float = 0.95,
                 on_record: Callable[[EvalRecord], None] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.out, self.state, self.clock = out, state, clock
        self.evaluator = evaluator
        self._baseline = baseline
        self.patterns = list(patterns)
        self.every, self.rule = every, rule
        self.vecnorm, self.ready, self.level = vecnorm, ready, level
        self._prev_policy: Any = None
        self._last = 0
        self._stop = False
        self.timing: Timing | None = None
        self.on_record = on_record  # called after each evaluation (the log line)

    def save_extra(self, folder: Path) -> None:
        """Checkpoint the last evaluated policy (the next KL and drift compare with it)."""
        import torch

        if self._prev_policy is not None:
            torch.save(self._prev_policy.state_dict(), folder / EVAL_POLICY)

    def load_extra(self, folder: Path, model: Any) -> None:
        import torch

        p = folder / EVAL_POLICY
        if p.is_file():
            self._prev_policy = copy.deepcopy(model.policy)
            self._prev_policy.load_state_dict(torch.load(p, weights_only=True))

    def baseline(self) -> list[EpisodeResult]:
        if callable(self._baseline):
            self._baseline = self._baseline()
        return self._baseline

    def _on_training_start(self) -> None:
        h = self.state.history
        self._last = h[-1].timesteps if h else 0
        self._stop = False

    def due(self) -> bool:
        """An evaluation is due: `every` steps since the last one, and the policy has changed."""
        n = self.num_timesteps
        return crossed(n, self._last, self.every) and self.ready(n) and self.changed()

    def changed(self) -> bool:
        h = self.state.history
        return not h or h[-1].extra.get("updates") != updates(self.model)

    def _on_rollout_start(self) -> None:
        # after PPO's update: the policy evaluated is the one the next rollout will use
        if not self.due():
            return
        self._last = self.num_timesteps
        t = time.perf_counter()
        self._stop = not self.evaluate()
        if self.timing is not None:
            self.timing.pause(time.perf_counter() - t)

    def _on_step(self) -> bool:
        return not self._stop

    def evaluate(self) -> bool:
        """Run one evaluation now; False when the stopping rule says stop."""
        model = self.model
        assert model is not None
        vn = self.vecnorm
        norm = vn.normalize_obs if vn is not None and vn.norm_obs else (lambda o: o)
        policy = model.policy
        policy.set_training_mode(False)

        def predict(o: np.ndarray) -> np.ndarray:
            a, _ = policy.predict(o, deterministic=True)
            return a

        t = time.perf_counter()
        results, seen = self.evaluator.run(predict, norm)
        eval_s = time.perf_counter() - t
        kl = drift = math.nan
        if self._prev_policy is not None:
            ev = self.evaluator
            kls, ch = policy_divergence(self._prev_policy, policy, seen, ev.states, ev.groups)
            kl = float(kls.sum() / len(results))  # per episode: summed over its steps
            drift = float(ch.mean())
        self._prev_policy = copy.deepcopy(policy)
        base = self.baseline()
        st = self.state
        rec = EvalRecord(len(st.history), int(self.num_timesteps), round(self.clock(), 3),
                         [r.reward for r in results], kl, drift,
                         self._extra(results, base, eval_s))  # fmt: skip
        st.history.append(rec)
        best = rec.mean_reward > st.best_mean
        if best:
            st.best_mean, st.best_index = rec.mean_reward, rec.index
            st.best_timesteps, st.best_wall_s = rec.timesteps, rec.wall_s
            save_model_atomic(model, self.out / "best_model.zip")
            if vn is not None:
                save_vecnormalize_atomic(vn, self.out / VECNORMALIZE)
        rec.extra["best"] = best
        rec.extra["updates"] = updates(model)
        if rec.extra["beats_baseline"] and st.first_beats is None:
            st.first_beats = {"index": rec.index, "timesteps": rec.timesteps, "wall_s": rec.wall_s}
        self._record(rec)
        write_json(self.out / "evaluations.json", [r.to_json() for r in st.history])
        stop = False
        if self.rule is not None:
            d = self.rule.check(st.history)
            st.last_decision = d.reason
            rec.extra["converged"] = stop = d.stop
            if d.stop:
                st.stop_kind, st.stop_reason = "converged", d.reason
        if self.on_record is not None:
            self.on_record(rec)
        return not stop

    def _extra(self, res: list[EpisodeResult], base: list[EpisodeResult],
               eval_s: float) -> dict[str, Any]:  # fmt: skip
        k = len(res) // len(self.patterns)
        per: dict[str, Any] = {}
        beats_all = True
        for i, p in enumerate(self.patterns):
            mine, ref = res[i * k : (i + 1) * k], base[i * k : (i + 1) * k]
            d = np.array([a.reward - b.reward for a, b in zip(mine, ref, strict=True)])
            slo = float(np.nanmean([a.slo_violation_rate for a in mine]))
            slo_b = float(np.nanmean([b.slo_violation_rate for b in ref]))
            lo = float(d.mean() - half_width(d, self.level))
            beats = lo > 0 and slo <= slo_b + 1e-9
            beats_all &= beats
            per[p] = {
                "reward": float(np.mean([a.reward for a in mine])),
                "baseline_reward": float(np.mean([b.reward for b in ref])),
                "reward_diff": float(d.mean()), "reward_diff_ci_low": lo,
                "slo_violation_rate": slo, "baseline_slo_violation_rate": slo_b,
                "replica_s": float(np.mean([a.replica_s for a in mine])),
                "baseline_replica_s": float(np.mean([b.replica_s for b in ref])),
                "beats_baseline": bool(beats),
            }  # fmt: skip
        return {"patterns": per, "beats_baseline": bool(beats_all),
                "baseline_mean_reward": float(np.mean([b.reward for b in base])),
                "half_width": half_width(np.array([r.reward for r in res]), self.level),
                "eval_s": round(eval_s, 3)}  # fmt: skip

    def _record(self, rec: EvalRecord) -> None:
        """The evaluation's figures in progress.csv / TensorBoard (`eval/` keys)."""
        lg = self.logger
        lg.record("eval/mean_reward", rec.mean_reward)
        lg.record("eval/baseline_mean_reward", rec.extra["baseline_mean_reward"])
        lg.record("eval/beats_baseline", float(rec.extra["beats_baseline"]))
        if math.isfinite(rec.kl):
            lg.record("eval/policy_kl", rec.kl)
            lg.record("eval/action_drift", rec.drift)
        for p, v in rec.extra["patterns"].items():
            lg.record(f"eval/{p}/reward_diff", v["reward_diff"])
            lg.record(f"eval/{p}/slo_violation_rate", v["slo_violation_rate"])
            lg.record(f"eval/{p}/replica_s", v["replica_s"])
        lg.record("eval/wall_s", rec.wall_s)

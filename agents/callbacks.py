"""stable-baselines3 callbacks of `kisim train`: held-out evaluation (best model and the
stopping rule), atomic checkpoints, episode KPIs, normaliser freeze and the wall budget.

They share one `RunState` - everything besides the model and the VecNormalize that a
checkpoint must keep for ``--resume`` to continue the same run: the evaluation history,
the best model's score, time used by earlier sessions, why training stopped.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import random
import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.convergence import ConvergenceRule, EvalRecord, half_width
from agents.rundir import write_json
from kisim.config import Scenario

CHECKPOINTS = "checkpoints"
STATE = "state.json"
RNG = "rng.pkl"
VECNORMALIZE = "vecnormalize.pkl"
EVAL_POLICY = "eval_policy.pt"
MAX_JOINT_ACTIONS = 512  # larger action spaces compare raw distributions (no effect grouping)


# --------------------------------------------------------------------------- shared state


@dataclass
class RunState:
    history: list[EvalRecord] = field(default_factory=list)
    best_mean: float = -math.inf
    best_index: int = -1
    best_timesteps: int = -1
    best_wall_s: float = math.nan
    first_beats: dict[str, Any] | None = None  # first evaluation beating the baseline everywhere
    wall_before_s: float = 0.0  # wall seconds of earlier sessions (resume)
    stop_kind: str | None = None  # converged | timesteps | time_budget | interrupted
    stop_reason: str | None = None
    last_decision: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "history": [r.to_json() for r in self.history], "best_mean": self.best_mean,
            "best_index": self.best_index, "best_timesteps": self.best_timesteps,
            "best_wall_s": self.best_wall_s, "first_beats": self.first_beats,
            "wall_before_s": self.wall_before_s, "stop_kind": self.stop_kind,
            "stop_reason": self.stop_reason, "last_decision": self.last_decision,
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunState:
        def num(x: Any, default: float) -> float:
            return default if x is None else float(x)

        return cls(
            history=[EvalRecord.from_json(r) for r in d.get("history", [])],
            best_mean=num(d.get("best_mean"), -math.inf), best_index=int(d.get("best_index", -1)),
            best_timesteps=int(d.get("best_timesteps", -1)),
            best_wall_s=num(d.get("best_wall_s"), math.nan), first_beats=d.get("first_beats"),
            wall_before_s=num(d.get("wall_before_s"), 0.0),
            last_decision=d.get("last_decision", ""),
        )  # fmt: skip


class Clock:
    """Wall seconds of the whole run: earlier sessions + this one since `t0`."""

    def __init__(self, state: RunState, t0: float | None = None) -> None:
        self.state = state
        self.t0 = time.perf_counter() if t0 is None else t0

    def __call__(self) -> float:
        return self.state.wall_before_s + (time.perf_counter() - self.t0)


def _crossed(now: int, last: int, every: int) -> bool:
    return now // every > last // every


def _updates(model: Any) -> int:
    """PPO's count of gradient steps: tells whether the policy changed since a given moment."""
    return int(getattr(model, "_n_updates", 0))


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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    vn.save(str(tmp))
    os.replace(tmp, path)


# --------------------------------------------------------------------------- evaluation


Episode = tuple[str, int]  # (pattern, twin seed)


@dataclass
class EpisodeResult:
    reward: float
    slo_violation_rate: float
    replica_s: float


def baseline_results(scenario_json: dict[str, Any], policy: str,
                     episodes: Sequence[Episode]) -> list[EpisodeResult]:  # fmt: skip
    """The baseline policy on the evaluation episodes, via `agents.episodes.run_policy`
    (exactly as ``kisim eval`` runs it). Module-level so it can run in a worker process."""
    from agents.episodes import run_policy
    from kisim.config import with_pattern

    sc = Scenario.model_validate(scenario_json)
    out = []
    for pattern, seed in episodes:
        run = run_policy(policy, with_pattern(sc, pattern), seed)
        s = run.episode.summary
        out.append(EpisodeResult(float(run.reward), float(s["slo_violation_rate"]),
                                 float(s["gpu_replica_s"] + s["cpu_replica_s"])))  # fmt: skip
    return out


class PolicyEvaluator:
    """Runs a deterministic SB3 policy on fixed episodes of one `KisimEnv`."""

    def __init__(self, scenario: Scenario, patterns: Sequence[str], episodes: Sequence[Episode]):
        from kisim.actions import ACTIONS
        from kisim.env import KisimEnv

        self.env = KisimEnv(scenario, patterns=list(patterns))
        self.episodes = list(episodes)
        self.states: list[Any] = []  # the env's agent-side state at each observation (last run)
        space = self.env.action_space
        nvec = getattr(space, "nvec", None)
        n = getattr(space, "n", None)
        self.groups: EffectGroups | None = None
        size = int(np.prod(nvec)) if nvec is not None else int(n or 0)
        if 0 < size <= MAX_JOINT_ACTIONS:
            preset = ACTIONS[self.env.scenario.env.action](self.env.ctx)
            dims = [int(v) for v in nvec] if nvec is not None else [int(n)]
            self.groups = EffectGroups(preset, dims)

    def run(self, predict: Callable[[np.ndarray], np.ndarray],
            normalize: Callable[[np.ndarray], np.ndarray],
            ) -> tuple[list[EpisodeResult], np.ndarray]:  # fmt: skip
        """Per-episode results and the (normalised) observations the policy acted on."""
        env = self.env
        res: list[EpisodeResult] = []
        seen: list[np.ndarray] = []
        self.states = []
        for pattern, seed in self.episodes:
            obs, _ = env.reset(seed=seed, options={"pattern": pattern})
            bad = answered = 0
            cost = 0.0
            done = False
            while not done:
                o = normalize(obs)
                seen.append(o)
                self.states.append(copy.deepcopy(env.state))
                obs, _, term, trunc, info = env.step(predict(o))
                w = info["window"]
                bad += w.slo_violations
                answered += w.served + w.errors
                cost += w.gpu_replica_s + w.cpu_replica_s
                done = term or trunc
            res.append(EpisodeResult(env.episode_reward, bad / answered if answered else math.nan,
                                     cost))  # fmt: skip
        return res, np.asarray(seen, dtype=np.float32)

    def close(self) -> None:
        self.env.close()


def _joint_probs(dist: Any) -> np.ndarray:
    """(N, prod(nvec)) joint action probabilities, first component slowest (itertools.product)."""
    d = dist.distribution
    comps = [c.probs.double().numpy() for c in (d if isinstance(d, list) else [d])]
    p = comps[0]
    for c in comps[1:]:
        p = (p[:, :, None] * c[:, None, :]).reshape(len(p), -1)
    return p


def _state_key(st: Any) -> tuple[Any, ...]:
    t = tuple(sorted((k, v.cpu, v.memory_gib, v.max_batch_size, v.instances)
                     for k, v in st.templates.items()))  # fmt: skip
    return (tuple(sorted(st.desired.items())), st.placement, st.hpa_target, t)


def _effect_key(st: Any) -> tuple[Any, ...]:
    """The targets a state asks of the cluster. Placement only counts while every pool has
    replicas: with one pool at zero the Service routes everything to the other whatever
    the placement (`twin.kernel`'s routing rule, kube-proxy's too)."""
    k = _state_key(st)
    both = len(st.desired) > 1 and all(n > 0 for n in st.desired.values())
    return (k[0], k[1] if both else "-", k[2], k[3])


class EffectGroups:
    """Which joint actions have the same effect in a state: the env's action preset decodes
    each one (clamping included) on a copy of the state, and actions that leave the same
    targets (`_effect_key`) share a group."""

    def __init__(self, preset: Any, nvec: Sequence[int]) -> None:
        import itertools

        self.preset = preset
        ranges = (range(n) for n in nvec)
        self.joint = [np.array(a, dtype=np.int64) for a in itertools.product(*ranges)]
        self._cache: dict[tuple[Any, ...], np.ndarray] = {}

    def __call__(self, st: Any) -> np.ndarray:
        key = _state_key(st)
        g = self._cache.get(key)
        if g is None:
            ids: dict[tuple[Any, ...], int] = {}
            g = np.empty(len(self.joint), dtype=np.int64)
            for i, a in enumerate(self.joint):
                after = copy.deepcopy(st)
                self.preset.decode(a if len(a) > 1 else int(a[0]), after)
                g[i] = ids.setdefault(_effect_key(after), len(ids))
            self._cache[key] = g
        return g


def policy_divergence(old: Any, new: Any, obs: np.ndarray, states: Sequence[Any] | None = None,
                      groups: EffectGroups | None = None,
                      ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per observation: KL(old || new) and whether the deterministic action changed (0/1).

    With `states` and `groups` both are *behavioural*: the action distributions are first
    pushed through the env's action decoding (joint actions with the same effect in that
    state merged), so a policy that only reshuffles equivalent actions - +1 or +2 replicas
    when both hit max_replicas - does not count as moving. Without them, the raw
    distributions and actions are compared (KL summed over MultiDiscrete components).
    """
    import torch
    from torch.distributions import kl_divergence

    if len(obs) == 0:
        return np.zeros(0), np.zeros(0)
    with torch.no_grad():
        x = torch.as_tensor(obs, dtype=torch.float32)
        d_old, d_new = old.get_distribution(x), new.get_distribution(x)
        if states is not None and groups is not None:
            po, pn = _joint_probs(d_old), _joint_probs(d_new)
            kls, changed = [], []
            for i, st in enumerate(states):
                g = groups(st)
                a = np.bincount(g, weights=po[i])
                b = np.bincount(g, weights=pn[i])
                m = a > 0
                kls.append(float(np.sum(a[m] * (np.log(a[m]) - np.log(np.maximum(b[m], 1e-300))))))
                changed.append(g[int(po[i].argmax())] != g[int(pn[i].argmax())])
            return np.asarray(kls), np.asarray(changed, dtype=float)
        po_, pn_ = d_old.distribution, d_new.distribution
        if isinstance(po_, list):
            kl = sum(kl_divergence(a, b) for a, b in zip(po_, pn_, strict=True))
        else:
            kl = kl_divergence(po_, pn_)
            if kl.dim() > 1:
                kl = kl.sum(-1)
        mo, mn = d_old.mode(), d_new.mode()
        ch = (mo != mn).reshape(len(obs), -1).any(dim=1).float()
    return kl.double().numpy(), ch.double().numpy()


class Evaluation(BaseCallback):
    """Every `every` steps: evaluate, compare with the baseline, keep the best, check convergence.

    The baseline's results come from `baseline` (a list, or a thunk waiting on a worker
    process that computes them while training starts); they are fixed for the run.
    """

    def __init__(self, out: Path, state: RunState, clock: Clock, evaluator: PolicyEvaluator,
                 baseline: list[EpisodeResult] | Callable[[], list[EpisodeResult]],
                 patterns: Sequence[str], every: int,
                 rule: ConvergenceRule | None, vecnorm: Any, ready: Callable[[int], bool],
                 level: float = 0.95) -> None:  # fmt: skip
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
        return _crossed(n, self._last, self.every) and self.ready(n) and self.changed()

    def changed(self) -> bool:
        h = self.state.history
        return not h or h[-1].extra.get("updates") != _updates(self.model)

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
        rec.extra["updates"] = _updates(model)
        if rec.extra["beats_baseline"] and st.first_beats is None:
            st.first_beats = {"index": rec.index, "timesteps": rec.timesteps, "wall_s": rec.wall_s}
        self._log(rec)
        write_json(self.out / "evaluations.json", [r.to_json() for r in st.history])
        if self.rule is not None:
            d = self.rule.check(st.history)
            st.last_decision = d.reason
            rec.extra["converged"] = d.stop
            if d.stop:
                st.stop_kind, st.stop_reason = "converged", d.reason
                return False
        return True

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

    def _log(self, rec: EvalRecord) -> None:
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


# --------------------------------------------------------------------------- the others


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
                self.acc[i] += (w.slo_violations, w.served + w.errors,
                                w.gpu_replica_s + w.cpu_replica_s)  # fmt: skip
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
        if _crossed(n, self._last, self.every):
            self._last = n
            t = time.perf_counter()
            self.save()
            if self.timing is not None:
                self.timing.pause(time.perf_counter() - t)

    def _on_step(self) -> bool:
        return True


def write_checkpoint(out: Path, model: Any, vecnorm: Any, state: RunState,
                     env_states: list[dict[str, Any]], keep: int,
                     extra: Callable[[Path], None] | None = None) -> Path:  # fmt: skip
    """checkpoints/step-NNNNNNNNN/ built in a temporary folder, then renamed into place."""
    import torch

    root = out / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    n = int(model.num_timesteps)
    final = root / f"step-{n:09d}"
    tmp = root / f".tmp-step-{n:09d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save(str(tmp / "model.zip"))
    if vecnorm is not None:
        vecnorm.save(str(tmp / VECNORMALIZE))
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

"""Warm start by imitation (``warm_start`` in a TrainConfig): before PPO's first rollout, its
policy network learns to copy a teacher's actions, and its value network the teacher's returns.

Why: on cpu-fleet the reward pays a move one or two steps before a burst, and eighteen PPO
models trained from scratch never learned the bursts' timing reliably (docs/benchmark.md,
"cpu-fleet"); the clairvoyant oracle does it in every episode. Behaviour cloning (supervised
learning of the teacher's action, maximum likelihood) puts the policy where the oracle acts;
PPO then improves it on the reward, as from any other start. The teacher plays training-range
twin seeds (`TRAIN_SEED_MIN` + k), never the held-out or evaluation seeds, and its episodes
run exactly as ``kisim eval`` runs them (`run_policy`).

The value network is fitted to the teacher's discounted returns of the *normalised* reward
(VecNormalize's running-return scale, estimated from the teacher's episodes and handed to the
VecNormalize as its starting statistics), so PPO's first advantages are not the noise of an
untrained critic that would pull the cloned policy away before it learns anything.
"""

from __future__ import annotations

import multiprocessing as mp
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.policies import Policy, make_policy
from agents.training.training_env import TRAIN_SEED_MIN
from kisim.core.config import Scenario, scenario_data, scenario_fingerprint, with_pattern
from kisim.core.errors import ConfigError
from kisim.core.rundir import read_json
from kisim.core.window import Window
from kisim.env.environment import KisimEnv


@dataclass
class Demos:
    """The imitation's steps, episode after episode: what was seen, the teacher's label
    (its own action, or in DAgger's rounds what it would have done), the reward."""

    obs: np.ndarray  # (N, observation size) float32: what the policy saw before acting
    actions: np.ndarray  # (N, action dimensions) int64
    rewards: np.ndarray  # (N,) the env's reward of the step
    episode: np.ndarray  # (N,) int: which episode (0, 1, ...)

    def __add__(self, other: Demos) -> Demos:
        """DAgger's aggregate: `other`'s episodes numbered after this one's."""
        first = int(self.episode.max()) + 1 if len(self.episode) else 0
        return Demos(np.concatenate([self.obs, other.obs]),
                     np.concatenate([self.actions, other.actions]),
                     np.concatenate([self.rewards, other.rewards]),
                     np.concatenate([self.episode, other.episode + first]))  # fmt: skip

    def episode_rewards(self) -> list[float]:
        return [float(self.rewards[self.episode == k].sum()) for k in np.unique(self.episode)]

    def save(self, path: Path) -> None:
        """Atomically (a crash leaves the old file or none)."""
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, obs=self.obs, actions=self.actions, rewards=self.rewards,
                            episode=self.episode)  # fmt: skip
        tmp.replace(path)


def demo_seeds(first: int, episodes: int) -> list[int]:
    """Training-range twin seeds of the imitation's episodes `first`, `first` + 1, ..."""
    return [TRAIN_SEED_MIN + k for k in range(first, first + episodes)]


class Student(Policy):
    """DAgger's player: the cloned policy acts, the teacher says what it would have done in
    the same state (its label). The oracle re-plans from the env's state at every step, so
    its label is its choice from states it would not have reached itself."""

    name = "student"

    def __init__(self, learner: str, teacher: str) -> None:
        super().__init__()
        self.learner, self.teacher = make_policy(learner), make_policy(teacher)
        self.action, self.step_s = self.teacher.action, self.teacher.step_s
        self.labels: list[np.ndarray] = []

    def reset(self, scenario: Scenario) -> None:
        self.learner.reset(scenario)
        self.teacher.reset(scenario)

    def attach(self, env: KisimEnv) -> None:
        super().attach(env)
        self.learner.attach(env)
        self.teacher.attach(env)

    def act(self, obs: np.ndarray, window: Window | None, t: float) -> Any:
        self.labels.append(np.asarray(self.teacher.act(obs, window, t), np.int64).reshape(-1))
        return self.learner.act(obs, window, t)


Steps = tuple[np.ndarray, np.ndarray, np.ndarray]  # observations, labels, rewards


def _episode(job: tuple[dict[str, Any], str, str, int, str | None]) -> Steps:
    """One episode of the teacher, or of `learner` (a model file) labelled by the teacher
    (module level: runs in a worker process)."""
    from agents.evaluation.policy_run import run_policy

    scenario_json, pattern, teacher, seed, learner = job
    pol = make_policy(teacher) if learner is None else Student(f"ppo:{learner}", teacher)
    obs: list[np.ndarray] = []
    acts: list[np.ndarray] = []
    rews: list[float] = []

    def on_step(o: Any, a: Any, r: float) -> None:
        obs.append(np.asarray(o, np.float32))
        acts.append(np.asarray(a, np.int64).reshape(-1))
        rews.append(r)

    run_policy(pol, with_pattern(Scenario.model_validate(scenario_json), pattern), seed,
               on_step=on_step)  # fmt: skip
    labels = pol.labels if isinstance(pol, Student) else acts
    return np.stack(obs), np.stack(labels), np.asarray(rews)


def check_teacher(sc: Scenario, teacher: str) -> None:
    """The teacher must act in the scenario's own action preset (what PPO's outputs mean)."""
    pol = make_policy(teacher)
    action = pol.action or sc.env.action
    if pol.in_cluster or action != sc.env.action or pol.step_s not in (None, sc.env.step_s):
        raise ConfigError(f"warm_start.teacher: '{teacher}' does not act in {sc.name}'s action "
                          f"preset '{sc.env.action}' every env.step_s (in-cluster policies "
                          f"cannot be imitated)")  # fmt: skip


def record(sc: Scenario, patterns: Sequence[str], teacher: str, seeds: Sequence[int], jobs: int,
           log: Callable[[str], None], learner: Path | None = None) -> Demos:  # fmt: skip
    """Episodes on `seeds` (patterns in turn), `jobs` at a time: the teacher's, or with
    `learner` (a model file) the learner's play labelled by the teacher (DAgger)."""
    check_teacher(sc, teacher)
    data = scenario_data(sc)
    who = teacher if learner is None else f"the clone, labelled by {teacher},"
    model = None if learner is None else str(learner)
    work = [(data, patterns[k % len(patterns)], teacher, seed, model)
            for k, seed in enumerate(seeds)]  # fmt: skip
    parts = []
    ex = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"))
    try:
        for k, part in enumerate(ex.map(_episode, work)):  # in order: the same Demos for any jobs
            parts.append(part)
            log(f"warm start: {who} episode {k + 1}/{len(seeds)}, reward {part[2].sum():.3f}")
    finally:  # Ctrl-C: drop the episodes not begun rather than play them all first
        ex.shutdown(wait=True, cancel_futures=True)
    return Demos(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                 np.concatenate([p[2] for p in parts]),
                 np.concatenate([np.full(len(p[2]), k) for k, p in enumerate(parts)]))  # fmt: skip


def reuse(sc: Scenario, patterns: Sequence[str], teacher: str, episodes: int, run: Path
          ) -> Demos:  # fmt: skip
    """The first `episodes` teacher episodes of an earlier training run's OUT (`run`), checked
    to be those `record` would play now - the same scenario (fingerprint), teacher, patterns and
    seeds - so a second training seed need not replay a deterministic teacher. Only the
    teacher's own episodes are reused: DAgger's are played by that run's clone."""
    where = f"warm_start.demos: {run}"
    files = {n: run / n for n in ("config.json", "warm_start.json", "demos.npz")}
    for f in files.values():
        if not f.is_file():
            raise ConfigError(f"{where}: no {f.name} (not the OUT of a training with a warm start)")
    try:
        cfg, ws = read_json(files["config.json"]), read_json(files["warm_start.json"])
        with np.load(files["demos.npz"]) as z:
            keep = z["episode"] < episodes
            d = Demos(z["obs"][keep], z["actions"][keep], z["rewards"][keep], z["episode"][keep])
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as e:  # JSON errors are ValueErrors
        raise ConfigError(f"{where}: unreadable ({type(e).__name__}: {e})") from None
    fp, theirs = scenario_fingerprint(sc), cfg.get("fingerprint")
    if theirs != fp:
        raise ConfigError(f"{where}: trained on another scenario (fingerprint "
                          f"{str(theirs)[:12]}..., this one {fp[:12]}...)")  # fmt: skip
    played = len(ws.get("teacher_episode_rewards", []))
    for field, mine, old in (("teacher", teacher, ws.get("teacher")),
                             ("patterns", list(patterns), ws.get("patterns")),
                             ("seeds", demo_seeds(0, episodes), ws.get("seeds", [])[:episodes])):
        if mine != old:
            raise ConfigError(f"{where}: {field} {old} there, {mine} here")
    if played < episodes:
        raise ConfigError(f"{where}: its teacher played {played} episodes, this run wants "
                          f"{episodes}")  # fmt: skip
    if len(np.unique(d.episode)) != episodes:
        raise ConfigError(f"{where}: demos.npz holds {len(np.unique(d.episode))} of the "
                          f"{episodes} teacher episodes")  # fmt: skip
    return d


def running_returns(rewards: np.ndarray, episode: np.ndarray, gamma: float) -> np.ndarray:
    """VecNormalize's running discounted return at every step (reset at each episode)."""
    out = np.empty(len(rewards))
    ret = 0.0
    for i, r in enumerate(rewards):
        if i == 0 or episode[i] != episode[i - 1]:
            ret = 0.0
        ret = ret * gamma + r
        out[i] = ret
    return out


def value_targets(rewards: np.ndarray, episode: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted return from each step to its episode's end."""
    out = np.empty(len(rewards))
    g = 0.0
    for i in range(len(rewards) - 1, -1, -1):
        if i == len(rewards) - 1 or episode[i] != episode[i + 1]:
            g = 0.0
        g = rewards[i] + gamma * g
        out[i] = g
    return out


def start_normalizer(vn: Any, demos: Demos) -> Callable[[np.ndarray], np.ndarray]:
    """Seed `vn`'s (a VecNormalize, or None) running-return statistics with the teacher's
    episodes and return its reward scaling, so the critic is fitted to the rewards PPO sees."""
    if vn is None or not vn.norm_reward:
        return lambda r: r
    vn.ret_rms.update(running_returns(demos.rewards, demos.episode, vn.gamma))
    scale, clip = float(np.sqrt(vn.ret_rms.var + vn.epsilon)), float(vn.clip_reward)
    return lambda r: np.clip(r / scale, -clip, clip)


def clone(model: Any, demos: Demos, scale: Callable[[np.ndarray], np.ndarray], epochs: int,
          batch_size: int, learning_rate: float, value: bool,
          seed: int) -> dict[str, float]:  # fmt: skip
    """Behaviour cloning of `demos` into `model.policy` (module doc): maximum likelihood of the
    labels; with `value`, the critic too, on the rewards as `scale` maps them. The fit."""
    import torch

    pol = model.policy
    obs = torch.as_tensor(demos.obs)
    acts = torch.as_tensor(demos.actions)
    target = torch.as_tensor(value_targets(scale(demos.rewards), demos.episode, model.gamma),
                             dtype=torch.float32)  # fmt: skip
    opt = torch.optim.Adam(pol.parameters(), lr=learning_rate)
    gen = torch.Generator().manual_seed(seed)
    n = len(obs)
    pol.set_training_mode(True)
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=gen).split(batch_size):
            values, logp, _ = pol.evaluate_actions(obs[idx], acts[idx])
            loss = -logp.mean()
            if value:
                loss = loss + torch.nn.functional.mse_loss(values.flatten(), target[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(pol.parameters(), model.max_grad_norm)
            opt.step()
    pol.set_training_mode(False)
    with torch.no_grad():
        values, logp, _ = pol.evaluate_actions(obs, acts)
        greedy = torch.as_tensor(pol.predict(demos.obs, deterministic=True)[0])
    return {
        "samples": n,
        "epochs": epochs,
        "nll_per_step": float(-logp.mean()),
        "action_match": float((greedy == acts).all(dim=1).float().mean()),
        "value_rmse": float(torch.sqrt(torch.mean((values.flatten() - target) ** 2))),
        "value_target_std": float(target.std()),
    }

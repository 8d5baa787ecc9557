"""Where the CPU time of a PPO training step goes on one scenario (docs/training.md,
"Where a step's time goes").

Measured in one process, in CPU seconds (`time.process_time`): the machine this was written
on was deliberately loaded, so wall time says more about the neighbours than about kisim.
Functions are timed by wrapping them (~1 us per call, a few hundred calls per step):

1. **env alone** - `KisimEnv` over ``episodes`` training-seed episodes, actions drawn by a
   seeded ``action_space.sample()`` (what an untrained policy does), split into the twin's
   compiled request events (``kernel``), refills of its random streams (``draws``), the
   window's latency sort and quantiles (``sort``), the rest of the window, the control plane
   (SimPy: pods, scrapes, the load shaper, the clock), ``apply`` and the env's own work
   (action decoding, observation, reward); requests simulated per step.
2. **PPO loop** - ``PPO.learn(steps)`` with the training config (its envs, VecNormalize,
   hyper-parameters; no evaluation, no checkpoints), from the first rollout on: env steps,
   learning (gradient epochs) and the rest (policy inference, rollout buffer, wrappers).
3. **held-out evaluation and checkpoint** - one `PolicyEvaluator.run` over the config's
   held-out episodes and one checkpoint write, as ``kisim train`` does every
   ``evaluation.every_steps`` / ``checkpoints.every_steps``.

The file imports only modules that older commits also have, so `bench.train_speed` can run
it from a checkout of a commit before a change (``python bench/train_profile.py``).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

_acc: dict[str, float] = {}
_originals: list[tuple[Any, str, Any]] = []


def _wrap(owner: Any, attr: str, key: str) -> None:
    f = getattr(owner, attr)
    if getattr(f, "_profiled", False):
        return
    _originals.append((owner, attr, f))

    @functools.wraps(f)
    def timed(*a: Any, **k: Any) -> Any:
        t = time.process_time()
        try:
            return f(*a, **k)
        finally:
            _acc[key] = _acc.get(key, 0.0) + time.process_time() - t

    timed._profiled = True  # type: ignore[attr-defined]
    setattr(owner, attr, timed)


def instrument() -> None:
    """Wrap the timed functions (module doc); `uninstrument` undoes it."""
    import twin.backend as backend
    import twin.dataplane as dataplane
    import twin.kernel as kernel
    from kisim.env import environment

    _wrap(kernel, "run_until", "kernel")
    if hasattr(kernel, "percentiles_ms"):  # before the windows were sorted in twin.backend
        _wrap(kernel, "percentiles_ms", "sort")
    for name in ("sort_nonnegative", "window_stats_ms"):  # after
        if hasattr(backend, name):
            _wrap(backend, name, "sort")
    _wrap(dataplane.DataPlane, "_ensure_draws", "draws")
    _wrap(backend.TwinBackend, "_window", "window")
    _wrap(backend.TwinBackend, "advance", "advance")
    _wrap(backend.TwinBackend, "apply", "apply")
    _wrap(environment.KisimEnv, "step", "step")
    _wrap(environment.KisimEnv, "reset", "reset")


def uninstrument() -> None:
    """Put every wrapped function back (the profile leaves no trace in the process)."""
    while _originals:
        owner, attr, f = _originals.pop()
        setattr(owner, attr, f)


def env_alone(scenario: Any, episodes: int) -> dict[str, float]:
    """Per-step CPU ms of each part of `KisimEnv.step` (module doc, 1)."""
    from kisim.env.environment import KisimEnv

    env = KisimEnv(scenario)
    env.reset(seed=999_999)
    env.step(env.hold())  # numba cache load, outside the timing
    env.action_space.seed(0)
    _acc.clear()
    n = req = 0
    t0 = time.process_time()
    for k in range(episodes):
        env.reset(seed=1_000_000 + k)
        done = False
        while not done:
            _, _, term, trunc, info = env.step(env.action_space.sample())
            n += 1
            req += info["window"].offered
            done = term or trunc
    total = time.process_time() - t0
    a = _acc
    a.setdefault("sort", 0.0)  # a tree that sorts with np.sort in twin.backend: in "window"
    parts = {
        "kernel": a["kernel"], "draws": a["draws"], "sort": a["sort"],
        "window": a["window"] - a["sort"],
        "control_plane": a["advance"] - a["window"] - a["kernel"] - a["draws"],
        "apply": a["apply"], "env": a["step"] - a["advance"] - a["apply"],
        "reset": a["reset"],
    }  # fmt: skip
    parts["other"] = total - sum(parts.values())
    out = {f"{k}_ms": round(v / n * 1e3, 4) for k, v in parts.items()}
    out.update(steps=n, requests_per_step=round(req / n, 1), cpu_s=round(total, 3),
               steps_per_cpu_s=round(n / total, 2), ms_per_step=round(total / n * 1e3, 4),
               ns_per_request=round(total / req * 1e9, 1))  # fmt: skip
    return out


def ppo_loop(scenario: Any, cfg: Any, steps: int) -> tuple[dict[str, float], Any, Any]:
    """CPU per step of `PPO.learn` split into env, learning and the rest (module doc, 2)."""
    import torch
    from stable_baselines3.common.vec_env import VecNormalize
    from stable_baselines3.ppo import PPO

    from agents.training import ppo_model
    from agents.training.training_env import make_vec_env

    setup = getattr(ppo_model, "torch_for_training", None)  # older commits: threads only
    setup(cfg.envs.torch_threads) if setup else torch.set_num_threads(cfg.envs.torch_threads)
    venv = make_vec_env(scenario, list(cfg.envs.patterns), cfg.envs.n_envs, cfg.seed,
                        cfg.envs.schedule, ppo_model.ranges(cfg), "dummy")  # fmt: skip
    n = cfg.normalize
    vn = VecNormalize(venv, norm_obs=n.obs, norm_reward=n.reward, clip_obs=n.clip_obs,
                      clip_reward=n.clip_reward, gamma=cfg.ppo.gamma)  # fmt: skip
    model = ppo_model.new_model(cfg, vn)  # numba is warm (env alone); torch's first call is
    _wrap(PPO, "train", "learn")  # timed too (< 1 s): short runs stay affordable on a shared host
    _acc.clear()
    n0 = model.num_timesteps
    t0 = time.process_time()
    model.learn(steps, reset_num_timesteps=False)  # whole rollouts: may run a few more steps
    total = time.process_time() - t0
    n = model.num_timesteps - n0
    env_s, learn_s = _acc.get("step", 0.0) + _acc.get("reset", 0.0), _acc.get("learn", 0.0)
    out = {"steps": n, "cpu_s": round(total, 3), "steps_per_cpu_s": round(n / total, 2),
           "env_share": round(env_s / total, 4), "learn_share": round(learn_s / total, 4),
           "rest_share": round(1 - (env_s + learn_s) / total, 4),
           # the twin's compiled request loop, the same code in every commit measured so far:
           # CPU per step in units of it cancels the machine's speed when it is shared
           "kernel_share": round(_acc.get("kernel", 0.0) / total, 4)}  # fmt: skip
    return out, model, vn


def eval_and_checkpoint(scenario: Any, cfg: Any, model: Any, vn: Any) -> dict[str, float]:
    """CPU of one held-out evaluation and one checkpoint, and their share per training step
    at the config's intervals, given the PPO loop's CPU per step (module doc, 3)."""
    import tempfile

    from agents.training.checkpoints import save_model_atomic
    from agents.training.held_out import PolicyEvaluator, eval_episodes

    eps = eval_episodes(cfg.envs.patterns, cfg.evaluation.seeds_per_pattern)
    ev = PolicyEvaluator(scenario, cfg.envs.patterns, eps)
    policy = model.policy
    policy.set_training_mode(False)
    t0 = time.process_time()
    ev.run(lambda o: policy.predict(o, deterministic=True)[0], lambda o: o)
    eval_s = time.process_time() - t0
    with tempfile.TemporaryDirectory() as d:
        t0 = time.process_time()
        save_model_atomic(model, Path(d) / "model.zip")
        vn.save(str(Path(d) / "vecnormalize.pkl"))
        ck_s = time.process_time() - t0
    return {"eval_episodes": len(eps), "eval_cpu_s": round(eval_s, 3),
            "checkpoint_cpu_s": round(ck_s, 4), "eval_every": cfg.evaluation.every_steps,
            "checkpoint_every": cfg.checkpoints.every_steps}  # fmt: skip


def profile(scenario_file: str, config_file: str, episodes: int = 2,
            steps: int = 1024) -> dict[str, Any]:  # fmt: skip
    """All three measurements for one scenario and training config (module doc)."""
    from agents.training.train_config import load_train_config
    from kisim.core.config import load_scenario

    sc = load_scenario(scenario_file)
    cfg = load_train_config(config_file)
    res: dict[str, Any] = {"scenario": sc.name, "config": config_file}
    instrument()
    try:
        res["env"] = env_alone(sc, episodes)
        res["ppo"], model, vn = ppo_loop(sc, cfg, steps)
    finally:
        uninstrument()
    res["eval"] = eval_and_checkpoint(sc, cfg, model, vn)
    per_step = 1.0 / res["ppo"]["steps_per_cpu_s"]
    e = res["eval"]
    extra = e["eval_cpu_s"] / e["eval_every"] + e["checkpoint_cpu_s"] / e["checkpoint_every"]
    res["train_steps_per_cpu_s"] = round(1.0 / (per_step + extra), 2)
    res["eval_share"] = round(extra / (per_step + extra), 4)
    return res


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", required=True, help="scenario:config,... (files)")
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1024)
    a = ap.parse_args()
    for pair in a.scenarios.split(","):  # one process for all: torch's import paid once
        scenario, config = pair.split(":")
        sys.stdout.write(json.dumps(profile(scenario, config, a.episodes, a.steps)) + "\n")
        sys.stdout.flush()

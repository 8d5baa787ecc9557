"""`kisim bench train`: steps per second of PPO training on the twin, and where they go.

Three measurements in one process, on the default scenario and training config
(`configs/train/default.yaml`: its PPO hyper-parameters, envs and torch threads),
patterns rotating over the config's patterns:

1. **env alone** - one `KisimEnv` stepped with the "hold" action (no learning, no
   network): the twin's and env's cost per agent step (30 simulated seconds).
2. **whole loop, DummyVecEnv x n** - `PPO.learn(steps)` with no evaluation and no
   checkpoints; wall time split into *collection* (env steps + policy inference +
   rollout buffer) and *learning* (PPO's gradient epochs), and inside collection the
   env's own share (timed around every `env.step`).
3. **whole loop, SubprocVecEnv x n** (``--subproc``): the same with one process per env;
   collection can overlap on 2 cores, but the machine is shared.

One untimed warm-up episode first (numba JIT / cache load). Figures are wall-clock
and the machine is shared with other work: the load average is printed with them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_STEPS = 8192


def _timed(env: Any, acc: list[float]) -> Any:
    import gymnasium as gym

    class Timed(gym.Wrapper):
        def step(self, action: Any) -> Any:
            t = time.perf_counter()
            r = self.env.step(action)
            acc[0] += time.perf_counter() - t
            return r

        def reset(self, **kw: Any) -> Any:
            t = time.perf_counter()
            r = self.env.reset(**kw)
            acc[0] += time.perf_counter() - t
            return r

    return Timed(env)


def env_alone(scenario: Any, patterns: list[str], steps: int) -> dict[str, float]:
    from kisim.env.environment import KisimEnv

    env = KisimEnv(scenario, patterns=patterns)
    n, k = 0, 0
    t = time.perf_counter()
    while n < steps:
        env.reset(seed=1_000_000 + k, options={"pattern": patterns[k % len(patterns)]})
        k += 1
        done = False
        while not done:
            _, _, term, trunc, _ = env.step(env.hold())
            n += 1
            done = term or trunc
    wall = time.perf_counter() - t
    env.close()
    return {"steps": n, "wall_s": round(wall, 3), "steps_per_s": round(n / wall, 1)}


def whole_loop(scenario: Any, cfg: Any, steps: int, vec: str) -> dict[str, float]:
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecMonitor, VecNormalize

    from agents.training.callbacks import Timing
    from agents.training.ppo_model import new_model, torch_for_training
    from agents.training.training_env import Ranges, env_factory, fresh_info_dummy_vec_env

    torch_for_training(cfg.envs.torch_threads)
    n_envs, pats = cfg.envs.n_envs, list(cfg.envs.patterns)
    acc = [0.0]
    fns = [env_factory(scenario, pats, cfg.envs.schedule, i, n_envs, Ranges())
           for i in range(n_envs)]  # fmt: skip
    if vec == "dummy":  # the training's own DummyVecEnv (no deep copy of the infos)
        raw = fresh_info_dummy_vec_env([(lambda f=f: _timed(f(), acc)) for f in fns])
    else:
        raw = SubprocVecEnv(fns, start_method="fork")
    raw.seed(cfg.seed)
    venv = VecNormalize(VecMonitor(raw), norm_obs=cfg.normalize.obs,
                        norm_reward=cfg.normalize.reward, gamma=cfg.ppo.gamma)  # fmt: skip
    model = new_model(cfg, venv)
    timing = Timing()
    t = time.perf_counter()
    model.learn(steps, callback=timing)
    wall = time.perf_counter() - t
    venv.close()
    s = timing.summary()
    out = {"vec_env": vec, "n_envs": n_envs, "steps": int(s["steps"]), "wall_s": round(wall, 3),
           "steps_per_s": round(s["steps"] / wall, 1), "collect_s": s["collect_s"],
           "learn_s": s["learn_s"], "learn_share": round(s["learn_s"] / wall, 3)}  # fmt: skip
    if vec == "dummy":
        out["env_s"] = round(acc[0], 3)
        out["env_share"] = round(acc[0] / wall, 3)
        out["inference_s"] = round(s["collect_s"] - acc[0], 3)
    return out


def bench_train(steps: int = DEFAULT_STEPS, subproc: bool = False, json_out: bool = False,
                scenario: Path | str | None = None,
                config: Path | str | None = None) -> dict[str, Any]:  # fmt: skip
    """Run the measurements, print them, return them (see the module doc)."""
    from agents.training.train_config import load_train_config
    from kisim.core.config import load_scenario
    from kisim.env.environment import DEFAULT_SCENARIO, KisimEnv

    sc = load_scenario(scenario or DEFAULT_SCENARIO)
    cfg = load_train_config(config)
    pats = list(cfg.envs.patterns)
    warm = KisimEnv(sc, patterns=pats)  # numba JIT / cache load, outside every timing
    warm.reset(seed=999_999)
    for _ in range(3):
        warm.step(warm.hold())
    warm.close()
    res: dict[str, Any] = {
        "scenario": sc.name, "patterns": pats, "steps": steps,
        "load_average_before": os.getloadavg()[0], "cpus": os.cpu_count(),
        "env_alone": env_alone(sc, pats, min(steps, 2000)),
        "dummy": whole_loop(sc, cfg, steps, "dummy"),
    }  # fmt: skip
    if subproc:
        res["subproc"] = whole_loop(sc, cfg, steps, "subproc")
    res["load_average_after"] = os.getloadavg()[0]
    _print(res)
    if json_out:
        print(json.dumps(res, sort_keys=True))
    return res


def _print(r: dict[str, Any]) -> None:
    e, d = r["env_alone"], r["dummy"]
    p = sys.stdout.write
    p(f"scenario {r['scenario']} ({', '.join(r['patterns'])}), {r['cpus']} CPUs, "
      f"load average {r['load_average_before']:.1f} -> {r['load_average_after']:.1f} "
      "(shared machine)\n")
    p(f"env alone (hold action)        {e['steps_per_s']:8.1f} steps/s  ({e['steps']} steps)\n")
    p(f"PPO, DummyVecEnv x {d['n_envs']}         {d['steps_per_s']:8.1f} steps/s  "
      f"({d['steps']} steps in {d['wall_s']:.1f} s)\n")
    p(f"  env steps                    {d['env_s']:8.1f} s  ({d['env_share']:.0%})\n")
    p(f"  policy inference + buffer    {d['inference_s']:8.1f} s\n")
    p(f"  learning (gradient epochs)   {d['learn_s']:8.1f} s  ({d['learn_share']:.0%})\n")
    p(f"  = {d['steps_per_s'] / e['steps_per_s']:.0%} of the env-alone rate measured above "
      "(the reference: the twin's own cost bounds the loop)\n")
    if "subproc" in r:
        s = r["subproc"]
        p(f"PPO, SubprocVecEnv x {s['n_envs']}       {s['steps_per_s']:8.1f} steps/s  "
          f"(collection {s['collect_s']:.1f} s, learning {s['learn_s']:.1f} s)\n")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--subproc", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    bench_train(steps=a.steps, subproc=a.subproc, json_out=a.json)

"""PPO training speed on the suite before and after a change, alternating in one run.

``python -m bench.train_speed --before REF [--rounds R] [--scenarios a,b] [--out DIR]`` checks
out REF's tree (``git archive``) beside the working tree and runs `bench.train_profile` for
every suite scenario with a training config, from both trees, R rounds, the order of the two
trees alternating per round (so a drift in the machine's load hits both alike), each run in
its own process at ``nice -n 19``. Figures are CPU time per step (`bench.train_profile`), the
median over rounds. It writes into OUT (default ``results/benchmark/training-speed``):

* ``runs.csv`` - every run: tree, round, scenario and each measured number;
* ``speed.csv`` - per scenario and tree: env-alone, PPO-loop and whole-training steps per
  CPU-second, the speed-up, and the projected wall minutes of a 100 k-step training on an
  idle 2-core machine (DummyVecEnv: one core, CPU time = wall time; SubprocVecEnv: the
  env share split over 2 cores, an Amdahl bound - not measured here);
* ``breakdown.csv`` - per scenario, the after-tree's CPU ms per env step by part;
* ``speed.png|pdf`` and ``PROVENANCE.md`` (command, commits, host, load, seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SUITE = "configs/scenarios/suite"
TRAIN_SUITE = "configs/train/suite"
PARTS = ("kernel", "draws", "sort", "window", "control_plane", "apply", "env", "reset", "other")
STEPS_100K = 100_000


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


def snapshot(ref: str, into: Path) -> Path:
    """REF's tree under `into`, with this tree's profiler copied in (older trees lack it)."""
    arch = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=arch.stdout, check=True)
    shutil.copy(ROOT / "bench" / "train_profile.py", into / "bench" / "train_profile.py")
    return into


def run_trees(tree: Path, scenarios: list[str], episodes: int,
              steps: int) -> list[dict[str, Any]]:  # fmt: skip
    """`bench.train_profile` of every scenario from `tree`, in one niced process."""
    pairs = ",".join(f"{SUITE}/{s}.yaml:{TRAIN_SUITE}/{s}.yaml" for s in scenarios)
    cmd = ["nice", "-n", "19", sys.executable, "bench/train_profile.py", "--scenarios", pairs,
           "--episodes", str(episodes), "--steps", str(steps)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}
    p = subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True, text=True)
    lines = p.stdout.strip().splitlines()
    return [dict(json.loads(line)) for line in lines if line.startswith("{")]


def _flat(tree: str, rnd: int, r: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"tree": tree, "round": rnd, "scenario": r["scenario"]}
    for group in ("env", "ppo", "eval"):
        row.update({f"{group}_{k}": v for k, v in r[group].items()})
    row["train_steps_per_cpu_s"] = r["train_steps_per_cpu_s"]
    row["eval_share"] = r["eval_share"]
    return row


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per scenario and tree, the speed-up over 'before', the 100 k-step projection."""
    out = []
    for sc in sorted({r["scenario"] for r in rows}):
        base: dict[str, float] = {}
        for tree in ("before", "after"):
            rs = [r for r in rows if r["scenario"] == sc and r["tree"] == tree]
            if not rs:
                continue
            med = {k: statistics.median(r[k] for r in rs) for k in (
                "env_steps_per_cpu_s", "ppo_steps_per_cpu_s", "train_steps_per_cpu_s",
                "ppo_env_share", "env_requests_per_step", "ppo_kernel_share")}  # fmt: skip
            f = med["ppo_env_share"]
            amdahl = 1.0 / ((1.0 - f) + f / 2.0)  # env steps over 2 cores, the rest serial
            row = {"scenario": sc, "tree": tree, "rounds": len(rs), **med,
                   "speedup_train": (med["train_steps_per_cpu_s"] / base["train"]
                                     if base else 1.0),
                   # the same in units of the (unchanged) kernel's CPU: robust to the load
                   "speedup_kernel_units": (med["ppo_kernel_share"] / base["kshare"]
                                            if base else 1.0),
                   "min_100k_dummy_idle_2core": STEPS_100K / med["train_steps_per_cpu_s"] / 60,
                   "min_100k_subproc_idle_2core_bound": (STEPS_100K / med["train_steps_per_cpu_s"]
                                                         / amdahl / 60)}  # fmt: skip
            if tree == "before":
                base["train"] = med["train_steps_per_cpu_s"]
                base["kshare"] = med["ppo_kernel_share"]
            out.append({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    return out


def breakdown(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The after-tree's CPU ms per env step by part (median over rounds) and its shares."""
    out = []
    for sc in sorted({r["scenario"] for r in rows}):
        rs = [r for r in rows if r["scenario"] == sc and r["tree"] == "after"]
        if not rs:
            continue
        ms = {p: statistics.median(r[f"env_{p}_ms"] for r in rs) for p in PARTS}
        total = sum(ms.values())
        row: dict[str, Any] = {"scenario": sc, "requests_per_step": rs[0]["env_requests_per_step"],
                               "ms_per_step": round(total, 3)}  # fmt: skip
        row.update({f"{p}_ms": round(v, 3) for p, v in ms.items()})
        row.update({f"{p}_share": round(v / total, 4) for p, v in ms.items()})
        out.append(row)
    return out


def figure(speed: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scs = sorted({r["scenario"] for r in speed})
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for i, tree in enumerate(("before", "after")):
        vals = [next((r["train_steps_per_cpu_s"] for r in speed
                      if r["scenario"] == s and r["tree"] == tree), 0.0) for s in scs]  # fmt: skip
        ax.bar([j + (i - 0.5) * 0.38 for j in range(len(scs))], vals, 0.38, label=tree)
    ax.set_xticks(range(len(scs)), scs)
    ax.set_ylabel("training steps per CPU-second")
    ax.set_title("PPO training on the suite (kisim train loop, DummyVecEnv x 4)")
    ax.legend()
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(out / f"speed.{ext}", dpi=200)
    plt.close(fig)


def write_outputs(out: Path, rows: list[dict[str, Any]], prov: list[str]) -> list[dict[str, Any]]:
    """Every file of OUT from the runs so far (called after each process: a stopped
    comparison keeps what it measured)."""
    from kisim.core.rundir import atomic_write, write_csv

    cols = list(dict.fromkeys(k for r in rows for k in r))
    write_csv(out / "runs.csv", rows, cols)
    speed = summarise(rows)
    write_csv(out / "speed.csv", speed, list(dict.fromkeys(k for r in speed for k in r)))
    bd = breakdown(rows)
    if bd:
        write_csv(out / "breakdown.csv", bd, list(bd[0]))
    figure(speed, out)
    atomic_write(out / "PROVENANCE.md", "\n".join(prov) + "\n")
    return speed


def main(argv: list[str] | None = None) -> None:
    from tqdm import tqdm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git ref of the 'before' tree")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--scenarios", default="")
    ap.add_argument("--episodes", type=int, default=1)
    ap.add_argument("--steps", type=int, default=512)
    ap.add_argument("--out", default=str(ROOT / "results/benchmark/training-speed"))
    a = ap.parse_args(argv)
    scs = [s for s in a.scenarios.split(",") if s] or sorted(
        p.stem for p in (ROOT / TRAIN_SUITE).glob("*.yaml") if (ROOT / SUITE / p.name).is_file())
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    load0, t0 = os.getloadavg()[0], time.time()
    cmd = "python -m bench.train_speed " + " ".join(argv if argv is not None else sys.argv[1:])
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "twin", "kisim", "agents",
                 "bench")  # fmt: skip

    def prov(done: int, total: int) -> list[str]:
        return [
            "# Provenance of results/benchmark/training-speed", "",
            f"- command: `nice -n 19 .venv/bin/{cmd}` (each profile process niced too)",
            f"- before: `{a.before}` = {_git('rev-parse', a.before)}; after: the working tree at "
            f"{_git('rev-parse', 'HEAD')} (uncommitted code changes: {'yes' if dirty else 'none'})",
            f"- host: {platform.node()} {platform.platform()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}",
            f"- load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the last write; "
            f"{(time.time() - t0) / 60:.1f} min wall; {done} of {total} profile processes done. "
            "Another process measured latencies on the same 2 cores throughout and other "
            "engineers' jobs ran beside it: every figure is CPU time (time.process_time), not "
            "wall, and still noisy (the speed-up in kernel units cancels the machine's speed)",
            f"- per scenario and process: env alone {a.episodes} episode(s) (twin seeds "
            "1000000.., actions from action_space.sample() seeded 0), PPO.learn of "
            f"{a.steps} steps (whole rollouts, config seed), one held-out evaluation (seeds "
            "100000..) and one checkpoint; rounds in ABBA order (before, after, after, before); "
            "medians in speed.csv",
            "- load: each scenario's own pattern (requests per step in speed.csv)",
            "- projection: 100 k steps / (training steps per CPU-s) = wall minutes on an idle "
            "core (DummyVecEnv); the SubprocVecEnv column divides by the Amdahl bound "
            "1/((1-f)+f/2), f = env share of the PPO loop: a bound, not a measurement "
            "(docs/training.md, \"Where a step's time goes\")", ""]

    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": snapshot(a.before, Path(tmp)), "after": ROOT}
        jobs = [(r, tree) for r in range(a.rounds)  # ABBA: before, after, after, before, ...
                for tree in (("before", "after") if r % 2 == 0 else ("after", "before"))]
        for i, (r, tree) in enumerate(tqdm(jobs, desc="profile", unit="process", file=sys.stderr)):
            rows += [_flat(tree, r, x) for x in run_trees(trees[tree], scs, a.episodes, a.steps)]
            speed = write_outputs(out, rows, prov(i + 1, len(jobs)))
    print(json.dumps(speed, indent=1))


if __name__ == "__main__":
    main()

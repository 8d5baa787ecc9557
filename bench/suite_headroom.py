"""Non-triviality of the benchmark suite: per scenario, the best constant configuration
(searched on training seeds) against the clairvoyant oracle (on evaluation seeds), on the
scenario's reward. `agents.evaluation.headroom` does the work; this writes the results.

    .venv/bin/python -m bench.suite_headroom [SCENARIO.yaml ... | --suite DIR] \
        [--out results/suite-headroom] [--runs 5] [--jobs 2] [--horizon H] [--merge DIR ...]

Writes OUT/headroom.json (every number, the search's rungs, provenance: command, commit,
host, seeds, date), OUT/headroom.md (the table) and OUT/headroom.csv. A scenario already in
OUT/headroom.json with the same scenario fingerprint and settings is not run again.
Exit code 1 when a scenario's gap is below `--min-gap` (default 0.10). `--merge DIR` folds
the results of runs made beside this one (another OUT, e.g. one scenario per process on a
shared machine) into OUT first - their provenance is kept under `provenance.runs` - so that
they count as done.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kisim.core.paths import config_path

MIN_GAP = 0.10


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1], check=True)  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=False,
                               cwd=Path(__file__).resolve().parents[1]).stdout.strip()  # fmt: skip
        return out.stdout.strip() + (" (working tree had uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _host() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"node": platform.node(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "load_avg_at_start": [round(x, 2) for x in load]}


def _fmt(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 100 else f"{x:,.1f}"


def paired_p(r: dict[str, Any]) -> float:
    """One-sided paired t-test over the evaluation seeds (common random numbers): the oracle's
    episode reward above the constant's. NaN with fewer than 2 seeds or no spread."""
    from scipy.stats import ttest_rel

    o, c = r["oracle_score"]["rewards"], r["constant"]["rewards"]
    if len(o) < 2:
        return float("nan")
    return float(ttest_rel(o, c, alternative="greater").pvalue)


def table(results: list[dict[str, Any]], min_gap: float) -> str:
    """The Markdown table: per scenario, best constant vs oracle."""
    L = ["| scenario | best constant (training seeds) | reward: constant | reward: oracle | "
         "gap | oracle better on | p (paired t, one-sided) | "
         "cost/M req: constant / oracle (USD) | SLO attainment: constant / oracle | ≥ 10 % |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in results:
        c, o = r["constant"]["metrics"], r["oracle_score"]["metrics"]
        n = len(r["eval_seeds"])
        L.append(f"| {r['scenario']} | `{r['best_constant']}` | {_fmt(r['constant_reward'])} | "
                 f"{_fmt(r['oracle_reward'])} ({r['oracle']}) | {r['gap']:.1%} | "
                 f"{r['oracle_better_on_seeds']} of {n} seeds | {paired_p(r):.2g} | "
                 f"{c.get('cost_per_million', float('nan')):.3f} / "
                 f"{o.get('cost_per_million', float('nan')):.3f} | "
                 f"{c.get('slo_attainment', float('nan')):.4f} / "
                 f"{o.get('slo_attainment', float('nan')):.4f} | "
                 f"{'yes' if r['gap'] >= min_gap else '**no**'} |")  # fmt: skip
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    from agents.evaluation.headroom import TRAIN_SEEDS, Runner, headroom
    from kisim.core.config import load_scenario, scenario_fingerprint
    from kisim.core.errors import KisimError

    ap = argparse.ArgumentParser(prog="python -m bench.suite_headroom",
                                 description=__doc__.splitlines()[0])  # fmt: skip
    ap.add_argument("scenarios", nargs="*", type=Path)
    ap.add_argument("--suite", type=Path, default=config_path("scenarios", "suite"))
    ap.add_argument("--out", type=Path, default=Path("results/suite-headroom"))
    ap.add_argument("--runs", type=int, default=5, help="evaluation seeds 0..runs-1")
    ap.add_argument("--train-seeds", type=int, nargs="*", default=list(TRAIN_SEEDS))
    ap.add_argument("--jobs", type=int, default=0, help="processes (0: one per CPU)")
    ap.add_argument("--horizon", type=int, default=None, help="oracle horizon (default: "
                    "covers the slowest pool's start-up)")  # fmt: skip
    ap.add_argument("--max-levels", type=int, default=None, help="counts per pool in the "
                    "coarse grid (default: every count while the grid stays within 120 points)")
    ap.add_argument("--keep", type=int, default=4)
    ap.add_argument("--min-gap", type=float, default=MIN_GAP)
    ap.add_argument("--merge", type=Path, nargs="*", default=[],
                    help="other OUT folders whose results count as done")  # fmt: skip
    a = ap.parse_args(argv)
    files = a.scenarios or sorted(a.suite.glob("*.yaml"))
    try:
        scs = [(f, load_scenario(f)) for f in files]
        if not scs:
            raise KisimError(f"{a.suite}: no scenario files")
        if a.runs < 2:
            raise KisimError(f"--runs {a.runs}: at least 2 evaluation seeds")
    except KisimError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    store = a.out / "headroom.json"
    old = json.loads(store.read_text()) if store.is_file() else {}
    done = {r["scenario"]: r for r in old.get("results", [])}
    runs: dict[str, Any] = {}
    if old.get("results") and a.merge:  # results kept from before: keep where they came from
        runs[f"{a.out} before this run"] = old.get("provenance", {})
    for d in a.merge:
        other = d / "headroom.json"
        if not other.is_file():
            print(f"error: {other}: no such file (--merge)", file=sys.stderr)
            return 2
        got = json.loads(other.read_text())
        done.update({r["scenario"]: r for r in got.get("results", [])})
        runs[str(d)] = got.get("provenance", {})
    settings = {"runs": a.runs, "train_seeds": a.train_seeds, "horizon": a.horizon,
                "horizon_rule": "p95 start-up + 2 steps", "oracle_mode": "plan",
                "max_levels": a.max_levels, "keep": a.keep}  # fmt: skip
    runner = Runner(a.jobs)
    results = []
    t0 = time.perf_counter()
    try:
        for f, sc in scs:
            fp = scenario_fingerprint(sc)
            prev = done.get(sc.name)
            if prev and prev.get("fingerprint") == fp and prev.get("settings") == settings:
                print(f"{sc.name}: reusing the result in {store}", file=sys.stderr)
                results.append(prev)
                continue
            t = time.perf_counter()
            print(f"{sc.name} ({f})", file=sys.stderr, flush=True)
            r = headroom(sc, runner, list(range(a.runs)), a.train_seeds, a.horizon,
                         a.max_levels, a.keep, log=lambda m: print(m, file=sys.stderr, flush=True))
            r.update(file=str(f), fingerprint=fp, settings=settings,
                     wall_s=round(time.perf_counter() - t, 1))  # fmt: skip
            print(f"  {sc.name}: constant {r['constant_reward']:.3f}, oracle "
                  f"{r['oracle_reward']:.3f}, gap {r['gap']:.1%} ({r['wall_s']:.0f} s)",
                  file=sys.stderr, flush=True)  # fmt: skip
            results.append(r)
            done[sc.name] = r
            _write(a, store, list(done.values()), argv, runs)
    finally:
        runner.close()
    _write(a, store, [done[r["scenario"]] for r in results] + [r for n, r in done.items()
           if n not in {x["scenario"] for x in results}], argv, runs)  # fmt: skip
    print(table(results, a.min_gap))
    print(f"({time.perf_counter() - t0:.0f} s) -> {a.out}", file=sys.stderr)
    return 0 if all(r["gap"] >= a.min_gap for r in results) else 1


def _write(a: argparse.Namespace, store: Path, results: list[dict[str, Any]],
           argv: list[str] | None, runs: dict[str, Any]) -> None:  # fmt: skip
    from kisim.core.rundir import atomic_write

    cmd = ".venv/bin/python -m bench.suite_headroom " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    prov: dict[str, Any] = {"command": cmd, "commit": _commit(), "host": _host(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "definition": "gap = (R_oracle - R_constant) / |R_oracle|, mean episode rewards "
                          "(the scenario's env.reward) over the evaluation seeds; best "
                          "constant searched on the training seeds "
                          "(agents/evaluation/headroom.py)"}  # fmt: skip
    if runs:
        prov["runs"] = runs
    atomic_write(store, json.dumps({"provenance": prov, "results": results}, indent=1,
                                   allow_nan=True) + "\n")  # fmt: skip
    md = ["# Headroom of the benchmark suite: best constant configuration vs the oracle", "",
          f"- command: `{prov['command']}`", f"- commit: `{prov['commit']}`",
          f"- host: {prov['host']['node']} ({prov['host']['cpus']} CPUs, load "
          f"{prov['host']['load_avg_at_start']}), {prov['date']}",
          f"- seeds: best constant searched on training seeds {a.train_seeds}; both policies "
          f"then run on evaluation seeds 0..n-1, common random numbers (n per scenario: "
          f"'oracle better on ... of n seeds'; this run's --runs {a.runs})",
          f"- {prov['definition']}; the claim is gap ≥ {a.min_gap:.0%}", "",
          table(results, a.min_gap), "",
          "Search per scenario: a coarse grid (each pool's counts from min to max replicas - "
          "all of them where the grid stays within 120 points, else evenly spaced levels - "
          "and every placement where two pools hold pods) on the first training seed, then "
          f"the best {a.keep} and their "
          "neighbours (one pod more or less in one pool, another placement) on all training "
          "seeds. The oracle looks ahead the slowest pool's slow-case start-up (95th "
          "percentile) plus two steps, in `plan` mode (other traffic splits for its best "
          "three moves, those moves deferred by 1, 2 or 4 steps, and its best removals as "
          "round trips; agents/policies/oracle.py).", ""]
    if runs:
        md[4:4] = [f"- merged from `{d}`: `{p.get('command', '?')}` at commit "
                   f"`{p.get('commit', '?')}`, {p.get('date', '?')}" for d, p in runs.items()]
    atomic_write(store.parent / "headroom.md", "\n".join(md))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["scenario", "policy", "seed", "reward"])
    for r in results:
        for role in ("constant", "oracle_score"):
            s = r[role]
            for seed, rew in zip(s["seeds"], s["rewards"], strict=True):
                w.writerow([r["scenario"], s["policy"], seed, repr(rew)])
    atomic_write(store.parent / "headroom.csv", buf.getvalue())


if __name__ == "__main__":
    sys.exit(main())

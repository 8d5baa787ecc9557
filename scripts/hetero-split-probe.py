"""Probe: does hetero leave room beside its best rule, in that rule's own action space?

`cron-keda:2:0:1:0@gpu-70+t4=1` (the best rule on hetero) keeps one traffic split all episode,
70 % to the GPU pods. An operator who also scheduled the split - half to the CPU pods until the
first surge is over, then 70 % - would order fewer T4 pods for the first surge and more CPU
pods, which are cheaper per request. This plays that schedule as the `cron` teacher does, in
the `min-scale` preset on hetero-min-scale.yaml (the rule's deployment and KEDA), and compares it
by the benchmark's cheaper-or-better rule (`agents.benchmark.claims.verdict`, paired t,
unadjusted) with `cron:1:9` at a fixed 70 % (the rule's schedule played in the preset) on
evaluation seeds 0-9 and held-out seeds 100000-100009.

Not an opponent: the phased plans were picked by hand after looking at seeds 0-4 (gpu-50 until
330, 390, 420 or 480 s; floor utilisation 0.9 or 1.0). It shows only that a coordinated move -
split and floors together - beats the rule, which PPO warm-started from the rule did not find
(docs/benchmark.md, "hetero in the told rule's action space").

    .venv/bin/python scripts/hetero-split-probe.py [OUT]  # results/benchmark/hetero-split-probe
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agents.benchmark.claims import verdict
from agents.evaluation.policy_run import run_policy
from agents.evaluation.stats import compare, describe
from agents.policies.cron import Cron
from kisim.core.config import load_scenario
from kisim.core.rundir import atomic_write, write_csv

SCENARIO = "configs/scenarios/suite-train/hetero-min-scale.yaml"
PLANS: dict[str, tuple[str, list[tuple[float, str]]]] = {
    "fixed gpu-70, floor 1.0 (the rule's)": ("1:9", [(0.0, "gpu-70")]),
    "gpu-50 until 420 s, floor 1.0": ("1:9", [(0.0, "gpu-50"), (420.0, "gpu-70")]),
    "gpu-50 until 420 s, floor 0.9": ("0.9:9", [(0.0, "gpu-50"), (420.0, "gpu-70")]),
}
SEEDS = {"evaluation": list(range(10)), "held-out": list(range(100000, 100010))}
KEYS = ("cost_per_million", "slo_attainment", "cost", "p95_ms")


class PhasedCron(Cron):
    """`cron` whose split follows a schedule [(from_s, placement), ...]."""

    def __init__(self, arg: str, plan: list[tuple[float, str]]) -> None:
        super().__init__(arg)
        self.plan = plan

    def placement(self, t: float) -> str:
        return [p for t0, p in self.plan if t >= t0][-1]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sc = load_scenario(SCENARIO)
    rows: list[dict[str, Any]] = []
    jobs = [(name, group, seed) for name in PLANS for group, seeds in SEEDS.items()
            for seed in seeds]  # fmt: skip
    for name, group, seed in tqdm(jobs, desc="probe", unit="run"):
        arg, plan = PLANS[name]
        run = run_policy(PhasedCron(arg, plan), sc, seed)
        s = run.episode.summary
        rows.append({"plan": name, "seeds": group, "seed": seed, "reward": float(run.reward)}
                    | {k: float(s[k]) for k in KEYS})  # fmt: skip
    write_csv(out / "runs.csv", rows, ("plan", "seeds", "seed", "reward", *KEYS))
    ref = next(iter(PLANS))
    table: list[dict[str, Any]] = []
    for group in SEEDS:
        def vals(name: str, key: str, group: str = group) -> dict[int, float]:
            return {r["seed"]: r[key] for r in rows if r["plan"] == name and r["seeds"] == group}
        for name in PLANS:
            row: dict[str, Any] = {"seeds": group, "plan": name}
            for key in ("cost_per_million", "slo_attainment", "reward"):
                d = describe(vals(name, key).values())
                row[key] = d.mean
                row[f"{key}_ci95"] = (d.ci95_high - d.ci95_low) / 2
            if name != ref:
                cost, slo = (compare(vals(name, k), vals(ref, k))
                             for k in ("cost_per_million", "slo_attainment"))  # fmt: skip
                _, how = verdict((cost["diff"], cost["paired_p"]), (slo["diff"], slo["paired_p"]))
                row |= {"cost_diff": cost["diff"], "cost_p": cost["paired_p"],
                        "slo_diff": slo["diff"], "slo_p": slo["paired_p"],
                        "beats_the_rule": how or "no"}  # fmt: skip
            table.append(row)
    cols = ("seeds", "plan", "cost_per_million", "cost_per_million_ci95", "slo_attainment",
            "slo_attainment_ci95", "reward", "reward_ci95", "cost_diff", "cost_p", "slo_diff",
            "slo_p", "beats_the_rule")  # fmt: skip
    write_csv(out / "probe.csv", [{c: r.get(c, float("nan")) for c in cols} for r in table], cols)
    md = ["# hetero: a scheduled split beside the told rule's floors", "",
          f"`{Path(__file__).name}` (its docstring says what and why). Scenario `{SCENARIO}`; "
          f"reference: {ref} (`cron:1:9` = `cron-keda:2:0:1:0@gpu-70+t4=1`'s schedule). "
          "Mean ± 95 % CI half-width over 10 seeds; differences paired, unadjusted.", "",
          "| seeds | plan | cost / M req | SLO attainment | reward | cost diff (p) | SLO diff (p) "
          "| beats the rule's schedule |", "|---|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in table:
        diff = ("—", "—", "—") if r["plan"] == ref else (
            f"{r['cost_diff']:+.4f} ({r['cost_p']:.2g})",
            f"{100 * r['slo_diff']:+.2f} pp ({r['slo_p']:.2g})", r["beats_the_rule"])  # fmt: skip
        md.append(f"| {r['seeds']} | {r['plan']} | {r['cost_per_million']:.4f} ± "
                  f"{r['cost_per_million_ci95']:.4f} | {100 * r['slo_attainment']:.2f} ± "
                  f"{100 * r['slo_attainment_ci95']:.2f} % | {r['reward']:.3f} ± "
                  f"{r['reward_ci95']:.3f} | {diff[0]} | {diff[1]} | {diff[2]} |")  # fmt: skip
    atomic_write(out / "probe.md", "\n".join(md) + "\n")
    commit = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=40"],
                            capture_output=True, text=True).stdout  # fmt: skip
    atomic_write(out / "provenance.json", json.dumps({
        "command": f".venv/bin/python scripts/hetero-split-probe.py {out}",
        "commit": commit.strip(), "utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "host": f"{platform.node()}, {platform.platform()}, Python {platform.python_version()}",
        "scenario": SCENARIO, "seeds": SEEDS,
        "plans": {k: {"cron": a, "split": p} for k, (a, p) in PLANS.items()},
    }, indent=2) + "\n")  # fmt: skip
    print(out / "probe.md")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results/benchmark/hetero-split-probe"))

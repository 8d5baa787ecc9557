"""Write results/trace-frontier/frontier.{md,csv,png,pdf} and the per-seed values
(frontier-runs.csv): how far the clairvoyant oracle's cost-vs-SLO frontier reaches past tuned
HPA on the trace scenario.

The oracle plans for the scenario's reward; re-weighting the reward's money term
(`env.reward_weights.cost`, the SLO term kept at 0.75) moves it along its frontier, from
"attain the SLO" towards "spend little". Each point is compared with tuned HPA by the
benchmark's cheaper-or-better rule (agents/benchmark/claims.verdict: paired t over the common
seeds, unadjusted, so the test leans towards finding a win). The runs come from
(results/trace-frontier/PROVENANCE.md; docs/benchmark.md, "Can anything beat tuned HPA on
trace?"):

    kisim sweep --param env.reward_weights.cost=0.25,0.4,0.55,0.75,1.0 \
        --scenario configs/scenarios/suite/trace.yaml --policies oracle:4:plan --runs 10 \
        --out results/trace-frontier/oracle
    kisim eval --scenario configs/scenarios/suite/trace.yaml --patterns trace --runs 10 \
        --policies "hpa:0.45:0@gpu-40,keda:0.85:300@gpu-60,fixed:gpu=2,cpu=4@gpu-60,ppo:..." \
        --out results/trace-frontier/reference
    .venv/bin/python scripts/trace-frontier.py [results/trace-frontier]

It also writes generalists.md: each PPO model's trace reward against the tuned rules, and
each training configuration's mean over its training seeds.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from agents.benchmark.claims import verdict
from agents.evaluation.stats import compare, describe
from kisim.core.rundir import atomic_write

HPA = "hpa:0.45:0@gpu-40"  # tuned HPA on trace (results/benchmark/trace/tuned.json)
SLO_WEIGHT = 0.75  # the cost preset's default, kept by the sweep
METRICS = ("cost_per_million", "slo_attainment")


def _points(root: Path) -> dict[str, dict[str, dict[int, float]]]:
    """label -> metric -> seed -> value, oracle points first (by cost weight)."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    with (root / "oracle" / "summary.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            w = float(r["env.reward_weights.cost"])
            key = f"oracle, cost weight {w:g} (x{w / SLO_WEIGHT:.2f} of SLO's)"
            for m in METRICS:
                out.setdefault(key, {}).setdefault(m, {})[int(r["seed"])] = float(r[m])
    for f in sorted((root / "reference" / "runs").glob("*/*/seed-*/summary.json")):
        s = json.loads(f.read_text())
        for m in (*METRICS, "episode_reward"):  # the reward: generalists.md
            out.setdefault(str(s["policy"]), {}).setdefault(m, {})[int(s["seed"])] = float(s[m])
    if HPA not in out:
        raise SystemExit(f"{root}/reference: no runs of {HPA} (run the evaluation first)")
    return out


@dataclass(frozen=True)
class Point:
    """One policy's cost and SLO attainment over the seeds, and its comparison with tuned HPA."""

    name: str
    n: int
    cost: float  # USD per million requests, mean
    cost_ci: float  # 95 % t half-width
    slo: float  # share of requests within the SLO, mean
    slo_ci: float
    cost_diff: float  # seed-matched mean difference from tuned HPA
    cost_p: float
    slo_diff: float
    slo_p: float
    beats: str  # the rule's "how", "no", or "—" for tuned HPA itself

    @property
    def oracle(self) -> bool:
        return self.name.startswith("oracle")


def point(name: str, ms: dict[str, dict[int, float]], hpa: dict[str, dict[int, float]]) -> Point:
    cost, slo = describe(ms[METRICS[0]].values()), describe(ms[METRICS[1]].values())
    c, s = (compare(ms[m], hpa[m]) for m in METRICS)
    dc, pc = float(c["diff"]), float(c["paired_p"])  # type: ignore[arg-type]
    ds, ps = float(s["diff"]), float(s["paired_p"])  # type: ignore[arg-type]
    ok, how = verdict((dc, pc), (ds, ps))
    return Point(name, cost.n, cost.mean, (cost.ci95_high - cost.ci95_low) / 2, slo.mean,
                 (slo.ci95_high - slo.ci95_low) / 2, dc, pc, ds, ps,
                 how if ok else ("—" if name == HPA else "no"))  # fmt: skip


def main(root: Path) -> None:
    data = _points(root)
    pts = [point(k, v, data[HPA]) for k, v in data.items()]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(Point.__dataclass_fields__), lineterminator="\n")
    w.writeheader()
    w.writerows(asdict(p) for p in pts)
    atomic_write(root / "frontier.csv", buf.getvalue())
    per_seed = ["point,seed," + ",".join(METRICS)] + [
        f'"{k}",{s},' + ",".join(repr(v[m][s]) for m in METRICS)
        for k, v in data.items() for s in sorted(v[METRICS[0]])]  # fmt: skip
    atomic_write(root / "frontier-runs.csv", "\n".join(per_seed) + "\n")
    lines = ["| point | USD / M req. | SLO attainment | vs tuned HPA: cost | SLO | beats it |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for p in pts:
        vs = ("— | —" if p.name == HPA else
              f"{100 * p.cost_diff / (p.cost - p.cost_diff):+.1f} % (p {p.cost_p:.3g}) | "
              f"{100 * p.slo_diff:+.2f} pp (p {p.slo_p:.3g})")  # fmt: skip
        lines.append(f"| {p.name} | {p.cost:.4f} ± {p.cost_ci:.4f} | {100 * p.slo:.2f} ± "
                     f"{100 * p.slo_ci:.2f} % | {vs} | {p.beats} |")  # fmt: skip
    atomic_write(root / "frontier.md", "# The oracle's cost-vs-SLO frontier on trace against "
                 f"tuned HPA\n\nMean ± 95 % t half-width over {min(p.n for p in pts)} evaluation "
                 "seeds (common random numbers); differences seed-matched, paired t, unadjusted. "
                 "\"Beats\": cheaper at no worse SLO attainment, or better SLO attainment at no "
                 "higher cost (agents/benchmark/claims.py).\n\n"
                 + "\n".join(lines) + "\n")  # fmt: skip
    _figure(root, pts)
    _generalists(root, data)
    print(f"wrote {root}/frontier.md, frontier.csv, frontier-runs.csv, frontier.png, .pdf, "
          "generalists.md")


RULES = {"tuned HPA": HPA, "tuned KEDA": "keda:0.85:300@gpu-60",
         "best constant": "fixed:gpu=2,cpu=4@gpu-60"}  # trace's tuned rows (tuned.json)


def _generalists(root: Path, data: dict[str, dict[str, dict[int, float]]]) -> None:
    """generalists.md: each PPO model's trace reward against the tuned rules (paired t over
    the seeds, unadjusted), and each training configuration over its training seeds."""
    rw = {p: ms["episode_reward"] for p, ms in data.items() if "episode_reward" in ms}
    lines = ["| model | trace reward | " + " | ".join(f"vs {k}" for k in RULES) + " |",
             "| --- | ---: |" + " ---: |" * len(RULES)]  # fmt: skip
    groups: dict[str, list[float]] = {}
    for pol, v in rw.items():
        if not pol.startswith("ppo:"):
            continue
        mean = describe(v.values()).mean
        groups.setdefault(_group(pol), []).append(mean)
        cells = []
        for ref in RULES.values():
            c = compare(v, rw[ref])
            d, p = float(c["diff"]), float(c["paired_p"])  # type: ignore[arg-type]
            cells.append(f"{d:+.3f} (p {p:.2g})")
        lines.append(f"| `{pol}` | {mean:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "| training configuration | seeds | mean over seeds ± 95 % t half-width |",
              "| --- | ---: | ---: |"]  # fmt: skip
    for g, ms in groups.items():
        d = describe(ms)
        half = "—" if d.n < 2 else f"± {(d.ci95_high - d.ci95_low) / 2:.2f}"
        lines.append(f"| {g} | {d.n} | {d.mean:.3f} {half} |")
    refs = ", ".join(f"{k} {describe(rw[r].values()).mean:.3f}" for k, r in RULES.items())
    atomic_write(root / "generalists.md", "# The trace generalists' reward against the tuned "
                 f"rules\n\nMean over the evaluation seeds; {refs}. Differences seed-matched, "
                 "paired t, unadjusted (the reference evaluation's significance.csv has the "
                 "Holm-adjusted tests against tuned HPA).\n\n" + "\n".join(lines) + "\n")


def _group(policy: str) -> str:
    """'PPO <training config>' for a model (its folder, less a '-sN' training-seed suffix);
    a rule is its own group."""
    if not policy.startswith("ppo:"):
        return policy
    return "PPO " + re.sub(r"-s\d+$", "", Path(policy).parent.name)


def _figure(root: Path, pts: list[Point]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agents.sim2real.figures import save

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ora = [p for p in pts if p.oracle]
    ax.errorbar([100 * p.slo for p in ora], [p.cost for p in ora],
                xerr=[100 * p.slo_ci for p in ora], yerr=[p.cost_ci for p in ora], fmt="-o",
                color="#222222", capsize=2,
                label="oracle, money weighed x0.33 .. x1.33 of SLO")  # fmt: skip
    for p in ora:
        ax.annotate(p.name.split("(")[1].split(" ")[0], (100 * p.slo, p.cost), fontsize=7,
                    xytext=(4, -10), textcoords="offset points")  # fmt: skip
    groups: dict[str, list[Point]] = {}  # a rule, or a PPO training config over its seeds
    for p in pts:
        if not p.oracle:
            groups.setdefault(_group(p.name), []).append(p)
    colours = plt.get_cmap("tab10").colors
    for i, (name, ps) in enumerate(groups.items()):
        n = f" ({len(ps)} training seeds)" if len(ps) > 1 else ""
        ax.errorbar([100 * p.slo for p in ps], [p.cost for p in ps],
                    xerr=[100 * p.slo_ci for p in ps], yerr=[p.cost_ci for p in ps], capsize=2,
                    fmt="s" if name == HPA else "^" if name.startswith("PPO") else "D",
                    color=colours[i % len(colours)],
                    label=("tuned HPA " if name == HPA else "") + name + n)  # fmt: skip
    hpa = next(p for p in pts if p.name == HPA)
    ax.axhline(hpa.cost, color="#c44e52", lw=0.6, ls=":")
    ax.axvline(100 * hpa.slo, color="#c44e52", lw=0.6, ls=":")
    ax.set_xlabel("SLO attainment (% of requests within 100 ms)")
    ax.set_ylabel("USD per million requests")
    ax.set_title("trace: beating tuned HPA means the lower-right of its dotted lines", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    save(fig, root, "frontier")
    plt.close(fig)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results/trace-frontier"))

#!/usr/bin/env python
"""Choose among trained models on held-out seeds by the benchmark's own claim, before the
evaluation seeds see them.

    kisim eval --scenario S --policies RULE,ppo:A,ppo:B --patterns P --runs 10 \\
               --first-seed 100000 --reference RULE --out DIR
    scripts/choose-model.py DIR            # writes DIR/choice.md, prints it

Each model is compared with the reference (the rule it has to beat) by the cheaper-or-better
rule of `agents/benchmark/claims.verdict` on the eval's Holm-adjusted paired t-tests (as the
leaderboard does); the choice is, in this order, the model that beats it with the best
episode reward, else the best episode reward. Stated before any new model was evaluated
(docs/benchmark.md, "Choosing on held-out seeds"); the held-out seeds are training's
(100000..), never the leaderboard's 0..9.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from agents.benchmark.claims import verdict
from kisim.core.rundir import atomic_write

COST, SLO, REWARD = "cost_per_million", "slo_attainment", "episode_reward"


def rows(out: Path) -> tuple[str, dict[str, dict[str, tuple[float, float, float]]]]:
    """reference, {policy: {metric: (mean, diff vs reference, Holm p)}}."""
    ref, got = "", {}
    with (out / "significance.csv").open() as f:
        for r in csv.DictReader(f):
            if r["metric"] in (COST, SLO, REWARD):
                ref = r["reference"]
                got.setdefault(r["policy"], {})[r["metric"]] = (
                    float(r["mean"]),
                    float(r["diff"]),
                    float(r["paired_p_holm"]),
                )
    return ref, got


def main(out: Path) -> int:
    if not (out / "significance.csv").is_file():
        print(f"{out}: no significance.csv (run kisim eval with --reference first)",
              file=sys.stderr)  # fmt: skip
        return 2
    ref, got = rows(out)
    lines = [f"# Choice on held-out seeds ({out.name})", "",
             f"Reference (the rule to beat): `{ref}`. Paired t, Holm-adjusted over the models.",
             "", "| model | USD / M (diff, p) | SLO attainment (diff, p) | reward | beats it |",
             "| --- | --- | --- | ---: | --- |"]  # fmt: skip
    ranked = []
    for pol, m in got.items():
        (c, dc, pc), (s, ds, ps), (rw, _, _) = m[COST], m[SLO], m[REWARD]
        ok, how = verdict((dc, pc), (ds, ps))
        ranked.append((ok, rw, pol))
        lines.append(f"| `{pol}` | {c:.4f} ({dc:+.4f}, {pc:.2g}) | {100 * s:.2f} % "
                     f"({100 * ds:+.2f} pp, {ps:.2g}) | {rw:.3f} | {how or 'no'} |")  # fmt: skip
    ok, rw, pol = max(ranked)
    why = (
        "beats the reference by the rule, best reward among those"
        if ok
        else "none beats the reference by the rule: the best reward"
    )
    lines += ["", f"**Chosen: `{pol}`** ({why})."]
    text = "\n".join(lines) + "\n"
    atomic_write(out / "choice.md", text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: scripts/choose-model.py EVAL_DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))

"""`kisim demo`: the main job on the built-in default (what `scripts/demo.sh` runs)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from kisim.cli.evaluate import DEFAULT_SCENARIO, SEED_PATTERNS, _print_result, _split, run_eval


def demo(
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("results/demo"),
    runs: Annotated[int, typer.Option(help="Seeds per cell.")] = 5,
    jobs: Annotated[int, typer.Option(help="Parallel processes (0 = one per CPU).")] = 0,
) -> None:
    """The main job on the built-in default: HPA vs static on the four seed patterns."""
    res = run_eval(DEFAULT_SCENARIO, ["static", "hpa"], _split(SEED_PATTERNS), runs, out, jobs,
                   None, "hpa")  # fmt: skip
    _print_result(res, out)
    _headline(out)


def _headline(out: Path) -> None:
    import csv

    path = out / "summary.csv"
    if not path.is_file():
        return
    rows = {(r["policy"], r["pattern"], r["metric"]): float(r["mean"])
            for r in csv.DictReader(path.open())}  # fmt: skip
    pats = sorted({k[1] for k in rows})
    print("headline (mean over seeds): SLO violation rate and CPU replica-seconds, hpa vs static")
    for p in pats:
        h, s = rows.get(("hpa", p, "slo_violation_rate")), rows.get(("static", p, "slo_violation_rate"))
        hc, scc = rows.get(("hpa", p, "cpu_replica_s")), rows.get(("static", p, "cpu_replica_s"))
        if None not in (h, s, hc, scc):
            print(f"  {p:9s} hpa {h:6.1%} vs static {s:6.1%} violations; "
                  f"cpu replica-s {hc:,.0f} vs {scc:,.0f}", file=sys.stdout)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)

"""Write results/platform/study.{md,csv,png,pdf}: the platform scenario's variants side by side
(mean and 95 % t interval over seeds) and each variant's seed-matched difference from the
status quo (`mixed`), with the paired t-test's p-value, from the evaluations' run summaries.

Run the evaluations first (docs/platform.md, "Measured"), then:
    .venv/bin/python scripts/platform-study.py [results/platform]
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from agents.evaluation.stats import describe, paired, paired_t
from kisim.core.rundir import atomic_write

VARIANTS = ("mixed", "nobatch", "isolated", "ondemand", "prescaled", "staticquota", "wholegpu")
METRICS = (
    ("tenant_studio_slo_attainment", "studio SLO att."),
    ("tenant_lab_slo_attainment", "lab SLO att."),
    ("tenant_studio_p95_ms", "studio p95 (ms)"),
    ("tenant_studio_workflow_completion_s", "studio wf. time (s)"),
    ("tenant_lab_workflow_completion_s", "lab wf. time (s)"),
    ("tenant_studio_workflows_per_hour", "studio wf./h"),
    ("tenant_lab_workflows_per_hour", "lab wf./h"),
    ("tenant_studio_queue_s", "studio queue (s)"),
    ("tenant_lab_queue_s", "lab queue (s)"),
    ("platform_preemptions", "preemptions"),
    ("platform_reclaims", "reclaims"),
    ("platform_spot_interruptions", "spot interr."),
    ("platform_cost", "cost (USD)"),
    ("platform_spot_cost", "spot (USD)"),
)


def runs(root: Path, variant: str) -> dict[int, dict[str, float]]:
    """seed -> summary of the variant's evaluation runs."""
    out: dict[int, dict[str, float]] = {}
    for f in sorted((root / variant / "runs").glob("*/*/seed-*/summary.json")):
        out[int(f.parent.name.removeprefix("seed-"))] = json.loads(f.read_text())
    return out


def _num(v: object) -> float:
    return float(v) if isinstance(v, int | float) else float("nan")


def main(root: Path) -> None:
    data = {v: runs(root, v) for v in VARIANTS if (root / v / "runs").is_dir()}
    if "mixed" not in data:
        raise SystemExit(f"{root}/mixed: no evaluation runs (run the evaluations first)")
    rows: list[dict[str, object]] = []
    for v, seeds in data.items():
        for key, _ in METRICS:
            a = {s: _num(r.get(key)) for s, r in seeds.items()}
            ref = {s: _num(r.get(key)) for s, r in data["mixed"].items()}
            d = describe(a.values())
            pa, pb = paired(a, ref)
            diff = describe(pa - pb)
            p = paired_t(pa, pb).p if v != "mixed" else float("nan")
            rows.append({"variant": v, "metric": key, "n": d.n, "mean": d.mean,
                         "ci95_low": d.ci95_low, "ci95_high": d.ci95_high,
                         "diff_vs_mixed": diff.mean, "diff_ci95_low": diff.ci95_low,
                         "diff_ci95_high": diff.ci95_high, "paired_p": p})  # fmt: skip
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write(root / "study.csv", buf.getvalue())
    cell = {(str(r["variant"]), str(r["metric"])): r for r in rows}
    lines = ["| variant | " + " | ".join(h for _, h in METRICS) + " |",
             "| --- |" + " ---: |" * len(METRICS)]  # fmt: skip
    for v in data:
        vals = []
        for key, _ in METRICS:
            r = cell[(v, key)]
            m, lo, hi = float(r["mean"]), float(r["ci95_low"]), float(r["ci95_high"])  # type: ignore[arg-type]
            f = (".3f" if "attainment" in key
                 else ".2f" if "cost" in key or "per_hour" in key else ".0f")  # fmt: skip
            vals.append(f"{m:{f}} ± {(hi - lo) / 2:{f}}" if hi == hi else f"{m:{f}}")
        lines.append(f"| {v} | " + " | ".join(vals) + " |")
    n = min(len(s) for s in data.values())
    atomic_write(root / "study.md", "# Platform variants (mean ± 95 % t half-width over "
                 f"{n} seeds; seed-matched differences from `mixed` in study.csv)\n\n"
                 + "\n".join(lines) + "\n")  # fmt: skip
    _figure(root, data, cell)
    print(f"wrote {root}/study.md, study.csv, study.png, study.pdf")


def _figure(root: Path, data: dict[str, dict[int, dict[str, float]]],
            cell: dict[tuple[str, str], dict[str, object]]) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = (("tenant_studio_slo_attainment", "studio interactive SLO attainment"),
             ("tenant_studio_workflow_completion_s", "studio workflow completion (s)"),
             ("platform_cost", "platform cost per hour (USD)"))  # fmt: skip
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.2))
    vs = list(data)
    for ax, (key, title) in zip(axes, shown, strict=True):
        ms = [float(cell[(v, key)]["mean"]) for v in vs]  # type: ignore[arg-type]
        err = [(float(cell[(v, key)]["ci95_high"]) - float(cell[(v, key)]["ci95_low"])) / 2  # type: ignore[arg-type]
               for v in vs]  # fmt: skip
        ax.bar(range(len(vs)), ms, yerr=err, capsize=3, color="#4878a8")
        ax.set_xticks(range(len(vs)), vs, rotation=35, ha="right")
        ax.set_title(title, fontsize=9)
        if "attainment" in key:  # the differences are in the last percent
            ax.set_ylim(max(0.0, min(m - e for m, e in zip(ms, err, strict=True)) - 0.02), 1.0)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        tmp = root / f".study.{ext}.tmp"
        fig.savefig(tmp, dpi=150, format=ext)
        tmp.replace(root / f"study.{ext}")
    plt.close(fig)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results/platform"))

"""Aggregation and reporting: summary.csv, significance.csv, figures, report.md, table.tex.

`render(out)` rebuilds all of them from the run directories (or, with no runs/, from
the CSVs) without running an episode; `kisim report DIR` and the end of `evaluate`
both call it, so a report is always a pure function of what is on disk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluation import figures as figs
from agents.evaluation import stats
from agents.evaluation.fault_marks import fault_spans_of
from kisim.core.errors import KisimError
from kisim.core.rundir import (
    META_KEYS,
    RunRecord,
    atomic_write,
    collect_runs,
    read_config,
    read_csv,
    read_hist,
    read_json,
    read_timeline,
    write_csv,
)
from kisim.core.summary import pools_of, summary_keys

MANIFEST = "eval.json"
HEADLINE: tuple[str, ...] = (
    "p95_ms", "p99_ms", "slo_violation_rate", "throughput_rps",
    "gpu_replica_s", "cpu_replica_s", "scaling_actions",
)  # fmt: skip
"""The headline columns for the seed layout; `headline` builds them over any pools."""


MONEY_HEADLINE: tuple[str, ...] = ("slo_attainment", "p95_attainment", "cost", "cost_per_million")
"""SLO attainment and money, shown after throughput where the runs report them."""


def headline(metrics: set[str]) -> list[str]:
    """Headline metrics present in `metrics`: latency, SLO, throughput, SLO attainment
    (requests, windows), cost and cost per million requests, each pool's replica-seconds
    (GPU pools first where the pools' kinds are known, else as found), scaling actions."""
    pools = [m for m in _pool_metric_order(metrics) if m.endswith("_replica_s")]
    order = [*HEADLINE[:4], *MONEY_HEADLINE, *pools, "scaling_actions"]
    return [m for m in order if m in metrics]


def _pool_metric_order(names: set[str]) -> list[str]:
    """Per-pool metrics ordered as `summary_keys` writes them, seed pools (gpu, cpu) first."""
    pools = [k[: -len("_replica_s")] for k in names if k.endswith("_replica_s") and k != "replica_s"]
    pools.sort(key=lambda p: ({"gpu": 0, "cpu": 2}.get(p, 1), p))  # seed gpu first, cpu last
    return [k for k in summary_keys(pools) if k in names]
LEAD_P = "paired_p_holm"  # the test the report leads with (docs/evaluation.md)
ALPHA = 0.05


# --------------------------------------------------------------------------- data


def metric_values(summary: Mapping[str, Any]) -> dict[str, float]:
    """Numeric KPIs of one run, plus the derived total `replica_s` (every pool's)."""
    vals = {}
    for k, v in summary.items():
        if k in META_KEYS or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        vals[k] = float(v)
    pools = pools_of(vals)
    if pools:
        vals["replica_s"] = sum(vals[f"{p}_replica_s"] for p in pools)
    return vals


def metric_order(names: set[str]) -> list[str]:
    """The summary's order (`summary_keys` over the pools present), then `replica_s`, then
    anything else alphabetically."""
    known = _pool_metric_order(names) + (["replica_s"] if "replica_s" in names else [])
    return known + sorted(names - set(known))


def cells_of(records: Sequence[RunRecord]) -> dict[tuple[str, str], dict[int, dict[str, float]]]:
    cells: dict[tuple[str, str], dict[int, dict[str, float]]] = {}
    for r in records:
        cells.setdefault((r.policy, r.pattern), {})[r.seed] = metric_values(r.summary)
    return cells


# --------------------------------------------------------------------------- formatting


def fmt(x: float) -> str:
    """Three significant figures, thousands without exponent, NaN as an em dash."""
    if x is None or not math.isfinite(x):
        return "—"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.2e}"
    return f"{x:.3g}"


def pm(mean: float, low: float, high: float) -> str:
    """`mean ± half-width`, both rounded to two significant figures of the half-width."""
    if not math.isfinite(mean):
        return "—"
    if not (math.isfinite(low) and math.isfinite(high)):
        return fmt(mean)
    half = (high - low) / 2
    if half <= 0:
        return f"{fmt(mean)} ± 0"
    d = min(max(0, 1 - math.floor(math.log10(half))), 6)
    return f"{mean:,.{d}f} ± {half:,.{d}f}"


def fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _tex(s: str) -> str:
    rep = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
           "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}  # fmt: skip
    return "".join(rep.get(c, c) for c in s)


# --------------------------------------------------------------------------- report.md / table.tex


def _index(rows: Sequence[Mapping[str, Any]], key: Sequence[str]) -> dict[tuple, Mapping[str, Any]]:
    return {tuple(r[k] for k in key): r for r in rows}


def _mark(sig: Mapping[tuple, Mapping[str, Any]], pol: str, pat: str, met: str) -> str:
    """'*' when the lead test rejects; '†' when every seed differs by the same amount.

    A constant non-zero paired difference leaves the t statistic undefined (no
    variance); it is a deterministic difference, marked as such rather than given a p.
    """
    r = sig.get((pol, pat, met))
    if r is None:
        return ""
    if math.isfinite(r[LEAD_P]) and r[LEAD_P] < ALPHA:
        return "*"
    if "constant difference" in str(r["note"]) and r["diff"] != 0 and r["n_pairs"] >= 2:
        return "†"
    return ""


LEAD = "report_lead.md"  # optional section a command puts first; `kisim report` keeps it


def write_report(
    out: Path,
    manifest: Mapping[str, Any],
    summary: Sequence[Mapping[str, Any]],
    significance: Sequence[Mapping[str, Any]],
    figure_paths: Sequence[Path],
) -> Path:
    """report.md: what was run, means ± CI, tests against the reference, figures."""
    pols, pats = list(manifest["policies"]), list(manifest["patterns"])
    ref = manifest.get("reference")
    labels = figs.short_labels(pols)
    summ = _index(summary, ("policy", "pattern", "metric"))
    sig = _index(significance, ("policy", "pattern", "metric"))
    head = headline({k[2] for k in summ})
    L: list[str] = [f"# Evaluation: {manifest.get('title') or out.name}", ""]
    L += [f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.", ""]
    for k, v in (manifest.get("meta") or {}).items():
        L.append(f"- {k}: `{v}`")
    lead = out / LEAD
    if lead.is_file():  # a command's own section (the demo's headline), kept on re-render
        L += ["", lead.read_text().rstrip()]
    L += ["", "## What was run", ""]
    shown = [f"`{p}`" + (f" (shown as {labels[p]})" if labels[p] != p else "") for p in pols]
    L.append(f"- policies: {', '.join(shown)}; reference: `{ref}`")
    L.append(f"- patterns: {', '.join(pats)}")
    seeds = manifest.get("seeds") or []
    real = (manifest.get("meta") or {}).get("backend", "twin") != "twin"
    if seeds and real:
        L.append(f"- seeds: {_ranges(seeds)} (real serving: a seed fixes the load generator's "
                 "pattern and users, not the system's own noise, which varies run to run)")
    elif seeds:
        L.append(
            f"- seeds: {_ranges(seeds)} (common random numbers: every policy sees the same seeds)"
        )
    ns = {(p, q): int(r["n"]) for (p, q, m), r in summ.items() if m == (head or ["n"])[0]}
    if ns and len(set(ns.values())) == 1:
        L.append(f"- runs per cell: n = {next(iter(ns.values()))}")
    elif ns:
        L.append("- runs per cell (n differs, see below):")
        L += ["", "| policy | " + " | ".join(pats) + " |", "|---|" + "---|" * len(pats)]
        L += [f"| {labels[p]} | " + " | ".join(str(ns.get((p, q), 0)) for q in pats) + " |"
              for p in pols]  # fmt: skip
    if "elapsed_s" in manifest:
        ran, found, jobs = manifest.get("ran", 0), manifest.get("skipped", 0), manifest.get("jobs")
        L.append(
            f"- last `kisim eval`: ran {ran}, found {found} complete on disk; runs took "
            f"{manifest['elapsed_s']:.1f} s on {jobs or 1} process(es)"
        )
    calls = manifest.get("calls") or []
    if len(calls) > 1:
        ran_by = ", ".join(f"{c.get('ran', '?')} ({c.get('started_utc', 'time not recorded')})"
                           for c in calls)  # fmt: skip
        L.append(f"- {len(calls)} calls on this folder ran {ran_by} runs (`eval.json`, `calls`)")
    failed = manifest.get("failed") or []
    if failed:
        L.append(f"- **{len(failed)} run(s) failed** and are not in the statistics:")
        L += [
            f"  - `{f['policy']}` / {f['pattern']} / seed {f['seed']}: {f['error']}" for f in failed
        ]
    L += ["", "## Results (mean ± 95 % CI half-width over seeds)", ""]
    L.append(
        f"\\* = differs from `{ref}` at Holm-adjusted paired-t p < {ALPHA} (same pattern and "
        "metric); † = differs from it by the same amount in every seed (deterministic, "
        "so the t-test is undefined)."
    )
    L += ["", "| pattern | policy | " + " | ".join(figs.metric_label(m) for m in head) + " |"]
    L.append("|---|---|" + "---:|" * len(head))
    for pat in pats:
        for pol in pols:
            if (pol, pat, head[0] if head else "") not in summ:
                continue
            cells = []
            for m in head:
                r = summ.get((pol, pat, m))
                c = pm(r["mean"], r["ci95_low"], r["ci95_high"]) if r else "—"
                cells.append(c + _mark(sig, pol, pat, m).replace("*", "\\*"))
            L.append(f"| {pat} | {labels[pol]} | " + " | ".join(cells) + " |")
    if significance:
        L += ["", f"## Against `{ref}`", ""]
        L.append(
            "Cells: relative change of the mean, then Holm-adjusted p of the paired t-test "
            "(lead), Wilcoxon signed-rank, Welch and Mann–Whitney. Every test, Cohen's d, "
            "Hedges' g and the CI of the paired difference are in `significance.csv`."
        )
        for pat in pats:
            rows = [p for p in pols if any(k[0] == p and k[1] == pat for k in sig)]
            if not rows:
                continue
            L += [
                "",
                f"### {pat}",
                "",
                "| policy | " + " | ".join(figs.metric_label(m) for m in head) + " |",
            ]
            L.append("|---|" + "---|" * len(head))
            for pol in rows:
                cells = []
                for m in head:
                    r = sig.get((pol, pat, m))
                    cells.append(_sig_cell(r) if r else "—")
                L.append(f"| {labels[pol]} | " + " | ".join(cells) + " |")
        undefined = sum(1 for r in significance if r["note"])
        if undefined:
            L += ["", f"{undefined} comparison(s) have an undefined test (zero variance, "
                  "identical samples, too few pairs); their p-values are empty, not invented, "
                  "and they are left out of the Holm family (see the `note` column)."]  # fmt: skip
    if figure_paths:
        L += ["", "## Figures", ""]
        for p in figure_paths:
            if p.suffix == ".png":
                L.append(f"![{p.stem}](figures/{p.name}) ([PDF](figures/{p.stem}.pdf))")
                L.append("")
    L += ["", "## Method", "", METHOD, ""]
    path = out / "report.md"
    atomic_write(path, "\n".join(L))
    return path


METHOD = (
    "Intervals are Student-t 95 % confidence intervals of the mean over seeds. Every policy "
    "runs with the same seeds (common random numbers), so comparisons with the reference lead "
    "with the paired t-test on seed-matched differences; the Wilcoxon signed-rank test is its "
    "distribution-free check, and Welch's t-test and Mann–Whitney U are the unpaired versions. "
    "p-values are Holm-adjusted within each pattern × metric over the policies compared with "
    "the reference, separately for each test. See docs/evaluation.md."
)


def _sig_cell(r: Mapping[str, Any]) -> str:
    rel = r["rel_change"]
    if not math.isfinite(rel):
        rel_s = "—"
    elif abs(rel) < 10:
        rel_s = f"{rel * 100:+.1f} %"
    else:  # a thousand per cent and more reads better as a ratio
        rel_s = f"×{rel + 1:.3g}" if rel > 0 else f"{rel * 100:+.0f} %"
    ps = " / ".join(fmt_p(r[c]) for c in
                    ("paired_p_holm", "wilcoxon_p_holm", "welch_p_holm", "mwu_p_holm"))  # fmt: skip
    return f"{rel_s} (p {ps})"


def _ranges(seeds: Sequence[int]) -> str:
    s = sorted(int(x) for x in seeds)
    if s == list(range(s[0], s[-1] + 1)) and len(s) > 2:
        return f"{s[0]}–{s[-1]}"
    return ", ".join(map(str, s))


def write_table_tex(
    out: Path, manifest: Mapping[str, Any], summary: Sequence[Mapping[str, Any]],
    significance: Sequence[Mapping[str, Any]],
) -> Path:  # fmt: skip
    """booktabs table of the headline metrics (needs \\usepackage{booktabs})."""
    pols, pats, ref = (
        list(manifest["policies"]),
        list(manifest["patterns"]),
        manifest.get("reference"),
    )
    labels = figs.short_labels(pols)
    summ = _index(summary, ("policy", "pattern", "metric"))
    sig = _index(significance, ("policy", "pattern", "metric"))
    head = headline({k[2] for k in summ})
    n = sorted({int(r["n"]) for r in summary if r["metric"] in head}) or [0]
    n_s = str(n[0]) if len(n) == 1 else f"{n[0]}--{n[-1]}"
    L = ["% generated by kisim; requires \\usepackage{booktabs}", "\\begin{table*}[t]",
         "\\centering", "\\footnotesize",
         f"\\caption{{Mean $\\pm$ 95\\,\\% CI half-width over $n={n_s}$ seeds (common random "
         f"numbers). $^{{*}}$: differs from \\texttt{{{_tex(str(ref))}}} at Holm-adjusted "
         f"paired-$t$ $p<{ALPHA}$; $^{{\\dagger}}$: the same difference in every seed.}}",
         "\\label{tab:kisim-eval}",
         "\\begin{tabular}{ll" + "r" * len(head) + "}", "\\toprule",
         "Pattern & Policy & " + " & ".join(_tex(figs.metric_label(m)) for m in head) + " \\\\",
         "\\midrule"]  # fmt: skip
    for gi, pat in enumerate(pats):
        rows = [p for p in pols if (p, pat, head[0] if head else "") in summ]
        if gi and rows:
            L.append("\\addlinespace")
        for i, pol in enumerate(rows):
            cells = []
            for m in head:
                r = summ.get((pol, pat, m))
                c = (
                    pm(r["mean"], r["ci95_low"], r["ci95_high"]).replace("±", "$\\pm$")
                    if r
                    else "--"
                )
                c = c.replace("—", "--").replace(",", "{,}")
                mk = _mark(sig, pol, pat, m).replace("†", "\\dagger")
                cells.append(c + (f"$^{{{mk}}}$" if mk else ""))
            first = _tex(pat) if i == 0 else ""
            L.append(f"{first} & {_tex(labels[pol])} & " + " & ".join(cells) + " \\\\")
    L += ["\\bottomrule", "\\end{tabular}", "\\end{table*}", ""]
    path = out / "table.tex"
    atomic_write(path, "\n".join(L))
    return path


# --------------------------------------------------------------------------- render


def load_manifest(out: Path) -> dict[str, Any] | None:
    p = Path(out) / MANIFEST
    return read_json(p) if p.is_file() else None


def _run_data(records: Sequence[RunRecord]) -> tuple[dict, dict, dict[str, float], str]:
    """Timelines, pooled histograms, SLO per pattern and load unit from the run dirs."""
    tl: dict[tuple[str, str], list] = {}
    hists: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    slo: dict[str, float] = {}
    unit = "users"
    for r in records:
        key = (r.policy, r.pattern)
        try:
            tl.setdefault(key, []).append(read_timeline(r.path))
            h = read_hist(r.path)
            prev = hists.get(key)
            hists[key] = (h["edges_ms"], h["counts"] + (prev[1] if prev else 0))
            cfg = read_config(r.path)
        except (OSError, ValueError, KeyError):
            continue
        if isinstance(cfg.get("slo_ms"), (int, float)):
            slo.setdefault(r.pattern, float(cfg["slo_ms"]))
        if (cfg.get("traffic") or {}).get("mode") == "open":
            unit = "req/s"
    return {k: v for k, v in tl.items() if v and len(v[0].get("t_end", []))}, hists, slo, unit


def render(
    out_dir: Path | str, reference: str | None = None, figures: bool = True
) -> dict[str, Path]:
    """Re-render CSVs, figures, report.md and table.tex from what is on disk."""
    out = Path(out_dir)
    man = load_manifest(out) or {}
    has_runs = (out / "runs").is_dir()
    if has_runs:
        if man.get("policies"):
            records = collect_runs(out, man["policies"], man["patterns"], man.get("seeds"))
        else:
            records = collect_runs(out)
        if not records:
            raise KisimError(f"{out}: no complete runs under runs/")
        pols = list(man.get("policies") or dict.fromkeys(r.policy for r in records))
        pats = list(man.get("patterns") or dict.fromkeys(r.pattern for r in records))
        ref = reference or man.get("reference") or ("hpa" if "hpa" in pols else pols[0])
        if ref not in pols:
            raise KisimError(f"reference policy '{ref}' is not among {', '.join(pols)}")
        cells = cells_of(records)
        metrics = metric_order({m for c in cells.values() for s in c.values() for m in s})
        summary = stats.summary_table(cells, pols, pats, metrics)
        sig = stats.significance_table(cells, pols, pats, metrics, ref)
        write_csv(out / "summary.csv", summary, stats.SUMMARY_COLUMNS)
        write_csv(out / "significance.csv", sig, stats.SIGNIFICANCE_COLUMNS)
    elif (out / "summary.csv").is_file():
        records = []
        summary = read_csv(out / "summary.csv")
        sig_path = out / "significance.csv"
        sig = read_csv(sig_path) if sig_path.is_file() else []
        pols = list(man.get("policies") or dict.fromkeys(str(r["policy"]) for r in summary))
        pats = list(man.get("patterns") or dict.fromkeys(str(r["pattern"]) for r in summary))
        ref = man.get("reference") or (sig[0]["reference"] if sig else None)
        if reference and reference != ref:
            raise KisimError(f"{out}: no runs/ to recompute tests against '{reference}'")
    else:
        raise KisimError(f"{out}: no evaluation here (neither runs/ nor summary.csv)")
    man = {**man, "policies": pols, "patterns": pats, "reference": ref}
    paths: list[Path] = []
    if figures:
        tl, hists, slo, unit = _run_data(records) if records else ({}, {}, {}, "users")
        paths = figs.render_figures(out, summary, pols, pats, tl, hists, slo, unit,
                                    faults=fault_spans_of(records))  # fmt: skip
    result = {"summary": out / "summary.csv", "significance": out / "significance.csv"}
    result["report"] = write_report(out, man, summary, sig, paths)
    result["table"] = write_table_tex(out, man, summary, sig)
    return result

"""The leaderboard: per suite scenario, every policy's cost per million requests, SLO
attainment, p95 and reward (mean ± 95 % CI over evaluation seeds), paired tests against the
best tuned rule baseline (Holm-adjusted per scenario and metric), the share of the oracle's
margin over tuned HPA captured, and a cost-vs-SLO (Pareto) figure per scenario; written as
CSV, Markdown, LaTeX and one self-contained HTML page (figures embedded).

Columns come from each run's ``summary.json``: the money columns (``cost_per_million``, ...,
``slo_attainment``) where the summaries carry them; otherwise cost is computed from the
replica-seconds and the scenario's relative prices (`Scenario.pool_price`, per replica-hour)
and SLO attainment is 1 - ``slo_violation_rate`` (the share of requests within the SLO), and
the table says so.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.benchmark import claims, platform_table
from agents.benchmark.opponents import SCHEDULED
from agents.evaluation import figures as figs
from agents.evaluation import stats
from agents.evaluation.report import fmt_p, pm
from kisim.core.config import Scenario
from kisim.core.rundir import RunRecord, atomic_write, write_csv
from kisim.core.summary import pools_of

COST_KEYS = ("cost_per_million", "cost_per_mreq", "cost_per_million_requests", "cost_per_m")
SLO_KEYS = ("slo_attainment", "slo_attainment_requests")
METRICS = ("cost_per_mreq", "slo_attainment", "p95_ms", "episode_reward")
BETTER = {"cost_per_mreq": -1, "slo_attainment": 1, "p95_ms": -1, "episode_reward": 1}
LABEL = {"cost_per_mreq": "cost / M req", "slo_attainment": "SLO attainment",
         "p95_ms": "p95 (ms)", "episode_reward": "reward"}  # fmt: skip
ALPHA = 0.05


@dataclass
class Entry:
    """One policy in one scenario's leaderboard."""

    policy: str
    role: str  # "tuned <opponent>" | "untuned <opponent>" | "best constant" | "oracle" | "extra"
    seeds: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> seed -> value


@dataclass
class Board:
    scenario: str
    question: str
    entries: list[Entry]
    best_rule: str | None
    hpa: str | None  # tuned HPA, the margin's reference
    oracle: str | None
    cost_source: str  # "summary" | "relative prices" | "platform"
    tuned: dict[str, str] = field(default_factory=dict)  # opponent -> chosen spec
    rows: list[dict[str, Any]] = field(default_factory=list)
    figure: Path | None = None
    best_reactive: str | None = None  # the best tuned rule not told the load curve


def run_metrics(summary: Mapping[str, Any], sc: Scenario) -> tuple[dict[str, float], str]:
    """The leaderboard's metrics of one run, and where cost came from."""
    num = {k: float(v) for k, v in summary.items()
           if isinstance(v, (int, float)) and not isinstance(v, bool)}  # fmt: skip
    out: dict[str, float] = {"p95_ms": num.get("p95_ms", math.nan),
                             "episode_reward": num.get("episode_reward", math.nan)}  # fmt: skip
    src = "relative prices"
    if "platform_cost" in num:  # the platform family: its node money and its models' requests
        reqs = num.get("platform_requests", 0.0)
        out["cost_per_mreq"] = num["platform_cost"] / reqs * 1e6 if reqs > 0 else math.nan
        out["slo_attainment"] = num.get("platform_slo_attainment", math.nan)
        return out | platform_table.metrics(num), "platform"
    for k in COST_KEYS:
        if k in num:
            out["cost_per_mreq"], src = num[k], "summary"
            break
    else:
        served = num.get("served", 0.0)
        cost = sum(num.get(f"{p}_replica_s", 0.0) * _price(sc, p) / 3600.0
                   for p in pools_of(summary))  # fmt: skip
        out["cost_per_mreq"] = cost / served * 1e6 if served > 0 else math.nan
    for k in SLO_KEYS:
        if k in num:
            out["slo_attainment"] = num[k]
            break
    else:
        v = num.get("slo_violation_rate", math.nan)
        out["slo_attainment"] = 1.0 - v if math.isfinite(v) else math.nan
    return out, src


def _price(sc: Scenario, pool: str) -> float:
    try:
        return float(sc.pool_price(pool))
    except (KeyError, AttributeError):
        return 1.0


def build(scenario: str, question: str, sc: Scenario, records: Sequence[RunRecord],
          roles: Mapping[str, str], tuned: Mapping[str, str],
          hpa_name: str = "hpa") -> Board:  # fmt: skip
    """Statistics of one scenario's evaluation runs (`hpa_name`: the family's HPA opponent,
    the oracle margin's reference)."""
    entries = {p: Entry(p, r) for p, r in roles.items()}
    src = "relative prices"
    for rec in records:
        if rec.policy not in entries:
            continue
        vals, src = run_metrics(rec.summary, sc)
        for m, v in vals.items():
            entries[rec.policy].seeds.setdefault(m, {})[rec.seed] = v
    return board_of(scenario, question, [e for e in entries.values() if e.seeds], src,
                    tuned, hpa_name)  # fmt: skip


def board_of(scenario: str, question: str, ents: list[Entry], src: str,
             tuned: Mapping[str, str], hpa_name: str = "hpa") -> Board:  # fmt: skip
    """The board of these entries: the best rule (tuned, highest mean reward), the best rule
    not told the load curve, tuned HPA and the oracle picked out, the statistics computed."""
    mean = {e.policy: _mean(e, "episode_reward") for e in ents}
    rules = [e for e in ents if e.role.startswith("tuned ")]
    reactive = [e.policy for e in rules if e.role.removeprefix("tuned ") not in SCHEDULED]
    best_rule = max((e.policy for e in rules), key=lambda p: mean[p]) if rules else None
    hpa = tuned.get(hpa_name) if tuned.get(hpa_name) in mean else None
    oracle = next((e.policy for e in ents if e.role == "oracle"), None)
    board = Board(scenario, question, ents, best_rule, hpa, oracle, src, dict(tuned),
                  best_reactive=max(reactive, key=lambda p: mean[p]) if reactive else None)
    board.rows = _rows(board)
    return board


def _mean(e: Entry, m: str) -> float:
    v = [x for x in e.seeds.get(m, {}).values() if math.isfinite(x)]
    return sum(v) / len(v) if v else math.nan


def _rows(b: Board) -> list[dict[str, Any]]:
    ref = next((e for e in b.entries if e.policy == b.best_rule), None)
    rows: list[dict[str, Any]] = []
    for e in b.entries:
        r: dict[str, Any] = {"scenario": b.scenario, "policy": e.policy, "role": e.role}
        for m in METRICS:
            d = stats.describe(e.seeds.get(m, {}).values())
            r |= {m: d.mean, f"{m}_ci95_low": d.ci95_low, f"{m}_ci95_high": d.ci95_high,
                  f"{m}_n": d.n}  # fmt: skip
            if ref is not None and e is not ref:
                c = stats.compare(e.seeds.get(m, {}), ref.seeds.get(m, {}))
                r[f"{m}_diff"], r[f"{m}_p"] = c["diff"], c["paired_p"]
            else:
                r[f"{m}_diff"], r[f"{m}_p"] = math.nan, math.nan
        rows.append(r)
    for m in METRICS:  # Holm over the policies compared with the best rule, per metric
        adj = stats.holm([r[f"{m}_p"] for r in rows])
        for r, a in zip(rows, adj, strict=True):
            r[f"{m}_p_holm"] = float(a)
    means = {r["policy"]: r["episode_reward"] for r in rows}
    lo = means.get(b.hpa) if b.hpa else None
    hi = means.get(b.oracle) if b.oracle else None
    for r in rows:
        share = math.nan
        if lo is not None and hi is not None and math.isfinite(hi - lo) and hi - lo > 0:
            share = (r["episode_reward"] - lo) / (hi - lo)
        r["oracle_margin_share"] = share
    return rows


COLUMNS: tuple[str, ...] = (
    "scenario", "policy", "role",
    *(f"{m}{s}" for m in METRICS for s in ("", "_ci95_low", "_ci95_high", "_n", "_diff", "_p",
                                           "_p_holm")),
    "oracle_margin_share",
)  # fmt: skip

SEED_COLUMNS: tuple[str, ...] = ("scenario", "policy", "role", "seed", *METRICS)


def seed_rows(boards: Sequence[Board]) -> list[dict[str, Any]]:
    """Every policy's value of each metric on each evaluation seed: what the statistics are
    computed from, committed beside them so a reader can recompute any test without the runs."""
    out = []
    for b in boards:
        for e in b.entries:
            for seed in sorted({s for v in e.seeds.values() for s in v}):
                out.append({"scenario": b.scenario, "policy": e.policy, "role": e.role,
                            "seed": seed} | {m: e.seeds.get(m, {}).get(seed, math.nan)
                                             for m in METRICS})  # fmt: skip
    return out


# --------------------------------------------------------------------------- figure


def pareto_front(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Names not dominated in (lower cost, higher SLO attainment), by cost."""
    ok = [(n, c, s) for n, c, s in points if math.isfinite(c) and math.isfinite(s)]
    front = [n for n, c, s in ok
             if not any((c2 <= c and s2 >= s) and (c2 < c or s2 > s) for _, c2, s2 in ok)]
    return sorted(front, key=lambda n: next(c for m, c, _ in ok if m == n))


def short_label(policy: str) -> str:
    """A figure's name for a policy: ``ppo:DIR/NAME/best_model.zip`` -> ``PPO NAME``."""
    if policy.startswith("ppo:"):
        p = Path(policy[4:])
        return "PPO " + (p.parent.name if p.stem in ("best_model", "model") else p.stem)
    return policy


def figure(b: Board, figdir: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    pts = [(r["policy"], r["cost_per_mreq"], r["slo_attainment"]) for r in b.rows]
    if not any(math.isfinite(c) and math.isfinite(s) for _, c, s in pts):
        return None
    front = pareto_front(pts)
    colors = figs.policy_colors([r["policy"] for r in b.rows])
    with matplotlib.rc_context(figs.STYLE):
        fig = Figure(figsize=(figs.WIDTH_IN, 3.6), layout="constrained")
        ax = fig.add_subplot()
        for i, r in enumerate(b.rows):
            c, s = r["cost_per_mreq"], r["slo_attainment"]
            if not (math.isfinite(c) and math.isfinite(s)):
                continue
            xe = _half(r, "cost_per_mreq")
            ye = _half(r, "slo_attainment")
            ax.errorbar(c, s, xerr=xe, yerr=ye, fmt=figs.MARKERS[i % len(figs.MARKERS)],
                        color=colors[r["policy"]], ms=4, capsize=1.5, lw=0.8,
                        label=short_label(r["policy"]))  # fmt: skip
        fx = [r["cost_per_mreq"] for n in front for r in b.rows if r["policy"] == n]
        fy = [r["slo_attainment"] for n in front for r in b.rows if r["policy"] == n]
        ax.step(fx, fy, where="post", color="0.4", lw=0.8, ls="--", label="Pareto front")
        unit = {"summary": "", "platform": " (platform node USD, model requests)"}.get(
            b.cost_source, " (relative price units)")
        ax.set_xlabel(f"cost per million requests{unit}")
        ax.set_ylabel("SLO attainment (share of requests within the SLO)")
        ax.set_title(f"{b.scenario}: cost vs SLO (mean ± 95 % CI)")
        # beside the axes: up to ~20 policies with setups in their names do not fit inside
        ax.legend(fontsize=5, loc="center left", bbox_to_anchor=(1.02, 0.5), ncol=1)
        paths = figs._save(fig, figdir, f"pareto-{b.scenario}")
    return paths[0]


def _half(r: Mapping[str, Any], m: str) -> float:
    lo, hi = r[f"{m}_ci95_low"], r[f"{m}_ci95_high"]
    return (hi - lo) / 2 if math.isfinite(lo) and math.isfinite(hi) else 0.0


# --------------------------------------------------------------------------- text


def _cell(r: Mapping[str, Any], m: str) -> str:
    if m == "slo_attainment":
        k = {x: r[f"{m}{x}"] * 100 for x in ("", "_ci95_low", "_ci95_high")}
        return pm(k[""], k["_ci95_low"], k["_ci95_high"]) + " %"
    return pm(r[m], r[f"{m}_ci95_low"], r[f"{m}_ci95_high"])


def _sig(r: Mapping[str, Any], m: str) -> str:
    p = r.get(f"{m}_p_holm", math.nan)
    if not math.isfinite(p):
        return ""
    better = r[f"{m}_diff"] * BETTER[m] > 0
    return ("▲" if better else "▼") if p < ALPHA else ""


def _table(b: Board) -> tuple[list[str], list[list[str]]]:
    head = ["policy", "role", "cost / M req", "SLO attainment", "p95 ms", "reward",
            "p vs best rule (reward)", "oracle margin"]  # fmt: skip
    body = []
    for r in sorted(b.rows, key=lambda r: -r["episode_reward"] if math.isfinite(
            r["episode_reward"]) else math.inf):  # fmt: skip
        name = r["policy"] + (" **(best rule)**" if r["policy"] == b.best_rule else
                              " (best reactive rule)" if r["policy"] == b.best_reactive else "")
        body.append([name, r["role"]] + [_cell(r, m) + _sig(r, m) for m in METRICS]
                    + [fmt_p(r["episode_reward_p_holm"]),
                       f"{r['oracle_margin_share'] * 100:.0f} %"
                       if math.isfinite(r["oracle_margin_share"]) else "—"])  # fmt: skip
    return head, body


NOTE = ("Mean ± 95 % CI half-width over the evaluation seeds (common random numbers). ▲/▼: "
        "better/worse than the best tuned rule baseline (the tuned opponent with the highest "
        "mean reward) at Holm-adjusted paired-t p < 0.05 (per scenario and metric, over the "
        "policies compared with it). Oracle margin: (reward − tuned HPA's) / (oracle's − tuned "
        "HPA's): 0 % = tuned HPA, 100 % = the oracle.")


def markdown(boards: Sequence[Board], out: Path, meta: Mapping[str, Any]) -> Path:
    L = ["# Leaderboard", "", f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.", ""]
    L += [f"- {k}: `{v}`" for k, v in meta.items()]
    L += ["", NOTE, ""]
    L += claims.markdown(boards)
    for b in boards:
        L += [f"## {b.scenario}", ""]
        if b.question:
            L += [f"*{b.question}*", ""]
        if b.cost_source == "platform":
            L += ["Platform family: cost = the shared platform's node money (USD) per million "
                  "model requests; SLO attainment = share of every model's requests within its "
                  "SLO (rejected and still-queued ones miss); p95 = the front door's; no oracle "
                  "(it plans the front door only).", ""]
        elif b.cost_source != "summary":
            L += ["Cost: replica-hours × the scenario's relative prices per million requests "
                  "(the summaries carry no money column).", ""]
        head, body = _table(b)
        L += ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
        L += ["| " + " | ".join(row) + " |" for row in body]
        extra = platform_table.markdown(b)
        if extra:
            L += ["", *extra]
        if b.tuned:
            L += ["", "Tuned on training seeds: " + ", ".join(
                f"{k} → `{v}`" for k, v in b.tuned.items())]  # fmt: skip
        if b.figure is not None:
            rel = b.figure.relative_to(out)
            L += ["", f"![{b.scenario}]({rel}) ([PDF]({rel.with_suffix('.pdf')}))"]
        L.append("")
    path = out / "leaderboard.md"
    atomic_write(path, "\n".join(L))
    return path


def _tex(s: str) -> str:
    rep = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
           "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}  # fmt: skip
    return "".join(rep.get(c, c) for c in s)


def latex(boards: Sequence[Board], out: Path) -> Path:
    L = ["% generated by kisim benchmark; requires \\usepackage{booktabs}", "\\begin{table*}[t]",
         "\\centering", "\\footnotesize",
         "\\caption{Leaderboard: mean $\\pm$ 95\\,\\% CI over evaluation seeds. "
         "$\\blacktriangle$/$\\blacktriangledown$: better/worse than the best tuned rule "
         "baseline at Holm-adjusted paired-$t$ $p<0.05$. Margin: share of the oracle's margin "
         "over tuned HPA.}", "\\label{tab:kisim-leaderboard}",
         "\\begin{tabular}{llrrrrr}", "\\toprule",
         "Scenario & Policy & Cost / M req & SLO att. & p95 (ms) & Reward & Margin \\\\",
         "\\midrule"]  # fmt: skip
    for i, b in enumerate(boards):
        if i:
            L.append("\\addlinespace")
        _, body = _table(b)
        for j, row in enumerate(body):
            cells = [c.replace("±", "$\\pm$").replace("▲", "$^\\blacktriangle$")
                     .replace("▼", "$^\\blacktriangledown$").replace("—", "--")
                     .replace("%", "\\%").replace(",", "{,}") for c in row[2:6]]  # fmt: skip
            name = _tex(row[0].replace(" **(best rule)**", "")) + (
                " (best rule)" if "best rule" in row[0] else "")
            margin = row[7].replace("%", "\\%").replace("—", "--")
            first = _tex(b.scenario) if j == 0 else ""
            L.append(f"{first} & {name} & " + " & ".join(cells) + f" & {margin} \\\\")
    L += ["\\bottomrule", "\\end{tabular}", "\\end{table*}", ""]
    path = out / "leaderboard.tex"
    atomic_write(path, "\n".join(L))
    return path


def html_page(boards: Sequence[Board], out: Path, meta: Mapping[str, Any]) -> Path:
    e = html.escape
    H = ["<!doctype html><html><head><meta charset='utf-8'><title>kisim leaderboard</title>",
         "<style>body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;"
         "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:90%}"
         "th,td{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:right}"
         "th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}"
         "img{max-width:100%}.q{font-style:italic}code{background:#f4f4f4}</style></head><body>",
         "<h1>kisim leaderboard</h1>",
         f"<p>Generated {e(datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC'))}.</p><ul>"]
    H += [f"<li>{e(str(k))}: <code>{e(str(v))}</code></li>" for k, v in meta.items()]
    H += ["</ul>", f"<p>{e(NOTE)}</p>"]
    for b in boards:
        H.append(f"<h2>{e(b.scenario)}</h2>")
        if b.question:
            H.append(f"<p class='q'>{e(b.question)}</p>")
        head, body = _table(b)
        H.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
        for row in body:
            row = [row[0].replace(" **(best rule)**", " (best rule)"), *row[1:]]
            H.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
        H.append("</table>")
        if b.tuned:
            H.append("<p>Tuned on training seeds: " + ", ".join(
                f"{e(k)} → <code>{e(v)}</code>" for k, v in b.tuned.items()) + "</p>")  # fmt: skip
        if b.figure is not None and b.figure.is_file():
            data = base64.b64encode(b.figure.read_bytes()).decode()
            H.append(f"<img alt='{e(b.scenario)} Pareto' src='data:image/png;base64,{data}'>")
    H.append("</body></html>")
    path = out / "leaderboard.html"
    atomic_write(path, "\n".join(H))
    return path


def write(boards: Sequence[Board], out: Path, meta: Mapping[str, Any],
          figures: bool = True) -> dict[str, Path]:  # fmt: skip
    """leaderboard.csv, seeds.csv, claims.csv, .md, .tex, .html and
    figures/pareto-<scenario>.png|pdf under OUT."""
    if figures:
        for b in boards:
            b.figure = figure(b, out / "figures")
    rows = [r for b in boards for r in b.rows]
    write_csv(out / "leaderboard.csv", rows, COLUMNS)
    write_csv(out / "seeds.csv", seed_rows(boards), SEED_COLUMNS)
    write_csv(out / "claims.csv", claims.rows(boards), claims.COLUMNS)
    plat = [r for b in boards if b.cost_source == "platform" for r in platform_table.rows(b)]
    if plat:  # the platform family's per-tenant table (platform_table)
        cols = list(dict.fromkeys(k for r in plat for k in r))
        write_csv(out / "platform.csv", [{c: r.get(c, math.nan) for c in cols} for r in plat],
                  tuple(cols))
    return {"csv": out / "leaderboard.csv", "claims": out / "claims.csv",
            "seeds": out / "seeds.csv",
            "md": markdown(boards, out, meta),
            "tex": latex(boards, out), "html": html_page(boards, out, meta)}


__all__ = ["Board", "Entry", "board_of", "build", "write", "pareto_front", "run_metrics", "seed_rows"]

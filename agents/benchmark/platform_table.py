"""The platform family's extra table: per-tenant SLO, workflow completion and cost.

A platform scenario's runs carry the shared platform's summary keys (`twin.platform.report`).
Next to the leaderboard's generic columns (for the platform: node money per million model
requests, every model's SLO attainment), each policy gets, as mean ± 95 % CI over the
evaluation seeds and with the same Holm-adjusted paired tests against the best tuned rule
baseline: the node bill (USD per run), every tenant's interactive SLO attainment, completed
workflows and mean completion time, and the preemptions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agents.evaluation import stats
from agents.evaluation.report import fmt_p, pm

if TYPE_CHECKING:  # pragma: no cover
    from agents.benchmark.leaderboard import Board

ALPHA = 0.05
FIXED = ("platform_cost", "platform_preemptions")
TENANT = ("slo_attainment", "workflows_completed", "workflow_completion_s")
BETTER = {"platform_cost": -1, "platform_preemptions": -1, "slo_attainment": 1,
          "workflows_completed": 1, "workflow_completion_s": -1}  # fmt: skip


def tenants_of(summary: Mapping[str, Any]) -> list[str]:
    """Tenants named by ``tenant_<t>_slo_attainment`` keys, in the summary's order."""
    suf = "_slo_attainment"
    return [k[len("tenant_"):-len(suf)] for k in summary
            if k.startswith("tenant_") and k.endswith(suf)]  # fmt: skip


def metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The table's figures of one run (empty for a run without a platform)."""
    if "platform_cost" not in summary:
        return {}
    keys = list(FIXED) + [f"tenant_{t}_{m}" for t in tenants_of(summary) for m in TENANT]
    return {k: float(summary.get(k, math.nan)) for k in keys}


def _better(key: str) -> int:
    for suffix, sign in BETTER.items():
        if key.endswith(suffix):
            return sign
    return 1


def columns(b: Board) -> list[str]:
    """The platform metrics present in the board's runs, in table order."""
    seen: dict[str, None] = {}
    for e in b.entries:
        for k in e.seeds:
            if k in FIXED or k.startswith("tenant_"):
                seen.setdefault(k, None)
    fixed = [k for k in FIXED if k in seen]
    return fixed + [k for k in seen if k not in FIXED]


def rows(b: Board) -> list[dict[str, Any]]:
    """Per policy: mean, CI, paired difference and Holm-adjusted p against the best rule."""
    cols = columns(b)
    ref = next((e for e in b.entries if e.policy == b.best_rule), None)
    out: list[dict[str, Any]] = []
    for e in b.entries:
        r: dict[str, Any] = {"scenario": b.scenario, "policy": e.policy, "role": e.role}
        for m in cols:
            d = stats.describe(e.seeds.get(m, {}).values())
            r |= {m: d.mean, f"{m}_ci95_low": d.ci95_low, f"{m}_ci95_high": d.ci95_high}
            if ref is not None and e is not ref:
                c = stats.compare(e.seeds.get(m, {}), ref.seeds.get(m, {}))
                r[f"{m}_diff"], r[f"{m}_p"] = c["diff"], c["paired_p"]
            else:
                r[f"{m}_diff"], r[f"{m}_p"] = math.nan, math.nan
        out.append(r)
    for m in cols:
        adj = stats.holm([r[f"{m}_p"] for r in out])
        for r, a in zip(out, adj, strict=True):
            r[f"{m}_p_holm"] = float(a)
    return out


def _label(key: str) -> str:
    if key == "platform_cost":
        return "node cost (USD)"
    if key == "platform_preemptions":
        return "preemptions"
    t, _, m = key[len("tenant_"):].partition("_")
    return {"slo_attainment": f"{t} SLO att.", "workflows_completed": f"{t} workflows done",
            "workflow_completion_s": f"{t} wf. time (s)"}.get(m, key)  # fmt: skip


def _cell(r: Mapping[str, Any], m: str) -> str:
    scale = 100.0 if m.endswith("slo_attainment") else 1.0
    txt = pm(r[m] * scale, r[f"{m}_ci95_low"] * scale, r[f"{m}_ci95_high"] * scale)
    txt += " %" if scale != 1.0 else ""
    p = r.get(f"{m}_p_holm", math.nan)
    if math.isfinite(p) and p < ALPHA and math.isfinite(r[f"{m}_diff"]):
        txt += "▲" if r[f"{m}_diff"] * _better(m) > 0 else "▼"
    return txt


def markdown(b: Board) -> list[str]:
    """The table's Markdown lines (none for a board without platform runs)."""
    rs = rows(b)
    cols = columns(b)
    if not cols:
        return []
    head = ["policy", *(_label(m) for m in cols), "p vs best rule (cost)"]
    L = ["Platform (per run; ▲/▼ as above, Holm-adjusted per metric):", "",
         "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]  # fmt: skip
    for r in sorted(rs, key=lambda r: r.get("platform_cost", math.inf)):
        L.append("| " + " | ".join([r["policy"], *(_cell(r, m) for m in cols),
                                    fmt_p(r.get("platform_cost_p_holm", math.nan))]) + " |")
    return L


__all__ = ["markdown", "metrics", "rows", "columns", "tenants_of"]

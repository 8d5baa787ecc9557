"""The numbers of a sim-to-real report: twin beside real, gaps, rank agreement, verdicts.

Pure functions of two run tables (``(policy, workload) -> seed -> metric -> value``, the
`agents.evaluation.report.cells_of` shape), one from the twin and one from real serving, so
the maths is tested on small synthetic tables and the report is a function of what is on
disk. Intervals and tests are the evaluation's (`agents.evaluation.stats`): Student-t 95 %
intervals over seeds, the paired t-test on seed-matched runs, Holm within a family.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats as st

from agents.evaluation import stats

NAN = math.nan
ALPHA = 0.05
KENDALL_VARIANT = "b"
"""scipy.stats.kendalltau variant: tau-b, which corrects the denominator for ties in either
ranking (two policies with equal means are tied, not ordered at random)."""

Cells = Mapping[tuple[str, str], Mapping[int, Mapping[str, float]]]


@dataclass(frozen=True)
class Metric:
    name: str  # summary key (replica_s is the total over pools, cells_of adds it)
    label: str
    higher_better: bool


METRICS: tuple[Metric, ...] = (
    Metric("slo_attainment", "SLO attainment", True),
    Metric("p95_ms", "p95 latency (ms)", False),
    Metric("throughput_rps", "throughput (req/s)", True),
    Metric("cost", "cost (USD)", False),
    Metric("replica_s", "replica-seconds", False),
    Metric("scaling_actions", "scaling actions", False),
    Metric("episode_reward", "episode reward", True),
)
RANK_METRIC = "episode_reward"
"""The objective every policy is scored by (the scenario's reward summed over the episode):
the headline Kendall tau compares the two rankings by it."""


def gap_pct(twin: float, real: float) -> float:
    """(twin - real) / |real| in %: how far the twin's mean is from reality's; NaN if undefined."""
    if not (math.isfinite(twin) and math.isfinite(real)) or real == 0:
        return NAN
    return 100.0 * (twin - real) / abs(real)


def seed_values(cells: Cells, policy: str, workload: str, metric: str) -> dict[int, float]:
    """seed -> the metric's value (NaN where a run lacks it) for one policy x workload."""
    runs = cells.get((policy, workload), {})
    return {s: float(m.get(metric, NAN)) for s, m in runs.items()}


def side_by_side(twin: Cells, real: Cells, policies: Sequence[str], workloads: Sequence[str],
                 metrics: Sequence[str]) -> list[dict[str, object]]:  # fmt: skip
    """Per workload x policy x metric: the twin's mean and 95 % CI, the real one's, the gap, and
    whether the real mean lies inside the twin's interval."""
    rows: list[dict[str, object]] = []
    for w in workloads:
        for p in policies:
            for m in metrics:
                t = stats.describe(seed_values(twin, p, w, m).values())
                r = stats.describe(seed_values(real, p, w, m).values())
                inside = (math.isfinite(t.ci95_low) and t.ci95_low <= r.mean <= t.ci95_high)
                rows.append({
                    "workload": w, "policy": p, "metric": m,
                    "twin_mean": t.mean, "twin_ci95_low": t.ci95_low,
                    "twin_ci95_high": t.ci95_high, "twin_n": t.n,
                    "real_mean": r.mean, "real_ci95_low": r.ci95_low,
                    "real_ci95_high": r.ci95_high, "real_n": r.n,
                    "gap_pct": gap_pct(t.mean, r.mean), "real_in_twin_ci": inside,
                })  # fmt: skip
    return rows


SIDE_COLUMNS: tuple[str, ...] = (
    "workload", "policy", "metric", "twin_mean", "twin_ci95_low", "twin_ci95_high", "twin_n",
    "real_mean", "real_ci95_low", "real_ci95_high", "real_n", "gap_pct", "real_in_twin_ci",
)  # fmt: skip


def means(cells: Cells, policies: Sequence[str], workload: str, metric: str) -> list[float]:
    """Each policy's mean over seeds (NaN where it has no finite value)."""
    return [stats.describe(seed_values(cells, p, workload, metric).values()).mean for p in policies]


def kendall(twin_means: Sequence[float], real_means: Sequence[float]) -> tuple[float, float, int]:
    """Kendall's tau-b between the twin's and reality's ordering of the same policies.

    Direction does not matter (both orderings use the same metric). Policies without a finite
    mean on either side are left out; fewer than two, or a side with every mean tied, gives
    NaN (no ranking to compare). Returns (tau, two-sided p, policies compared)."""
    x, y = np.asarray(twin_means, float), np.asarray(real_means, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    if n < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return NAN, NAN, n
    r = st.kendalltau(x, y, variant=KENDALL_VARIANT)
    return float(r.statistic), float(r.pvalue), n


def kendall_table(twin: Cells, real: Cells, policies: Sequence[str], workloads: Sequence[str],
                  metrics: Sequence[str]) -> list[dict[str, object]]:  # fmt: skip
    """Tau per workload x metric, with both rankings written out (best first)."""
    by = {m.name: m for m in METRICS}
    rows: list[dict[str, object]] = []
    for w in workloads:
        for m in metrics:
            tm, rm = means(twin, policies, w, m), means(real, policies, w, m)
            tau, p, n = kendall(tm, rm)
            hb = by[m].higher_better if m in by else True
            rows.append({"workload": w, "metric": m, "tau": tau, "p": p, "n_policies": n,
                         "twin_ranking": _order(policies, tm, hb),
                         "real_ranking": _order(policies, rm, hb)})  # fmt: skip
    return rows


KENDALL_COLUMNS: tuple[str, ...] = ("workload", "metric", "tau", "p", "n_policies",
                                    "twin_ranking", "real_ranking")  # fmt: skip


def _order(policies: Sequence[str], vals: Sequence[float], higher_better: bool) -> str:
    """Policies best first, ' > ' between them ('=' joins exact ties)."""
    pairs = [(v, p) for p, v in zip(policies, vals, strict=True) if math.isfinite(v)]
    pairs.sort(key=lambda t: -t[0] if higher_better else t[0])
    out = ""
    for i, (v, p) in enumerate(pairs):
        out += p if i == 0 else (" = " if v == pairs[i - 1][0] else " > ") + p
    return out


def verdict_family(cells: Cells, policies: Sequence[str], workload: str, metric: Metric,
                   alpha: float = ALPHA) -> dict[tuple[str, str], tuple[str, float]]:  # fmt: skip
    """Every pair (A, B), A before B in `policies`: the winner's name at Holm-adjusted paired-t
    p < alpha over the pairs of this workload x metric, else '' (no verdict); and that p."""
    pairs = list(combinations(policies, 2))
    res = [stats.compare(seed_values(cells, a, workload, metric.name),
                         seed_values(cells, b, workload, metric.name))
           for a, b in pairs]  # fmt: skip
    adj = stats.holm([float(r["paired_p"]) for r in res])  # type: ignore[arg-type]
    out: dict[tuple[str, str], tuple[str, float]] = {}
    for (a, b), r, p in zip(pairs, res, adj, strict=True):
        diff = float(r["diff"])  # type: ignore[arg-type]
        win = ""
        if math.isfinite(p) and p < alpha and diff != 0:
            win = a if (diff > 0) == metric.higher_better else b
        out[(a, b)] = (win, float(p))
    return out


def verdict_table(twin: Cells, real: Cells, policies: Sequence[str], workloads: Sequence[str],
                  metrics: Sequence[Metric],
                  alpha: float = ALPHA) -> list[dict[str, object]]:  # fmt: skip
    """Per workload x metric x pair: the twin's verdict, reality's, and whether they agree.

    ``holds`` is ``yes`` when the twin says A beats B and reality says so too, ``no`` when
    reality finds no difference, ``reversed`` when it finds the opposite; '' when the twin
    gives no verdict (then `agree` still says whether reality is also undecided)."""
    rows: list[dict[str, object]] = []
    for w in workloads:
        for m in metrics:
            tv = verdict_family(twin, policies, w, m, alpha)
            rv = verdict_family(real, policies, w, m, alpha)
            for (a, b), (tw, tp) in tv.items():
                rw, rp = rv[(a, b)]
                holds = "" if not tw else ("yes" if rw == tw else ("reversed" if rw else "no"))
                rows.append({"workload": w, "metric": m.name, "a": a, "b": b,
                             "twin_winner": tw, "twin_p_holm": tp, "real_winner": rw,
                             "real_p_holm": rp, "agree": tw == rw, "holds": holds})  # fmt: skip
    return rows


VERDICT_COLUMNS: tuple[str, ...] = ("workload", "metric", "a", "b", "twin_winner", "twin_p_holm",
                                    "real_winner", "real_p_holm", "agree", "holds")  # fmt: skip


def beats(cells: Cells, a: str, b: str, workload: str, alpha: float = ALPHA) -> tuple[bool, str]:
    """Issue 14's criterion: A beats B when it has better SLO attainment at no more
    replica-seconds, or fewer replica-seconds at no worse SLO attainment, the improvement at
    paired-t p < alpha over the seeds and the other metric not significantly worse (same test).
    Returns (verdict, one line of why)."""
    slo = stats.compare(seed_values(cells, a, workload, "slo_attainment"),
                        seed_values(cells, b, workload, "slo_attainment"))  # fmt: skip
    rs = stats.compare(seed_values(cells, a, workload, "replica_s"),
                       seed_values(cells, b, workload, "replica_s"))  # fmt: skip

    def better(r: Mapping[str, object], up: bool) -> bool:
        p, d = float(r["paired_p"]), float(r["diff"])  # type: ignore[arg-type]
        return math.isfinite(p) and p < alpha and (d > 0 if up else d < 0)

    def worse(r: Mapping[str, object], up: bool) -> bool:
        return better(r, not up)

    f = {k: float(v) for k, v in (("sd", slo["diff"]), ("sp", slo["paired_p"]),  # type: ignore[arg-type]
                                  ("rd", rs["diff"]), ("rp", rs["paired_p"]))}  # fmt: skip
    why = (f"SLO attainment {f['sd']:+.4f} (p {f['sp']:.3g}), "
           f"replica-s {f['rd']:+.1f} (p {f['rp']:.3g})")  # fmt: skip
    ok = ((better(slo, True) and not worse(rs, False))
          or (better(rs, False) and not worse(slo, True)))  # fmt: skip
    return ok, why

"""The sim-to-real report: CSVs, JSON, figures and report.md from what is on disk.

`render(OUT)` reads ``OUT/sim2real.json`` and the complete runs under ``OUT/twin`` and
``OUT/real`` and rebuilds everything (a pure function of the run directories, like the
evaluation's `report.render`): ``side_by_side.csv`` (twin vs real per policy x workload x
metric), ``kendall.csv``, ``verdicts.csv``, ``beats.csv``, ``sim2real-report.json``,
``figures/`` and ``report.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.evaluation.report import cells_of, fmt, fmt_p, pm
from agents.sim2real import compare as cmp
from agents.sim2real.figures import render_figures, short_labels
from kisim.core.errors import KisimError
from kisim.core.rundir import (
    atomic_write,
    collect_runs,
    read_config,
    read_json,
    read_timeline,
    write_csv,
    write_json,
)

BEATS_COLUMNS: tuple[str, ...] = ("workload", "policy", "reference", "side", "beats", "why")


def _load(side_dir: Path, policies: Sequence[str], workloads: Sequence[str],
          seeds: Sequence[int]) -> tuple[dict, dict, float | None]:  # fmt: skip
    recs = collect_runs(side_dir, policies, workloads, seeds) if side_dir.is_dir() else []
    tl: dict[tuple[str, str], list] = {}
    slo = None
    for r in recs:
        try:
            tl.setdefault((r.policy, r.pattern), []).append(read_timeline(r.path))
            cfg = read_config(r.path)
            slo = float(cfg["slo_ms"]) if isinstance(cfg.get("slo_ms"), (int, float)) else slo
        except (OSError, ValueError, KeyError):
            continue
    cells = cells_of(recs)
    for runs in cells.values():
        for m in runs.values():
            fill_cost(m)
    return cells, tl, slo


def fill_cost(m: dict[str, float]) -> None:
    """A run's total `cost` from its pools' costs where the summary left it empty (the local
    backend reports ``gpu_cost`` None for a scenario without a GPU pool, and so no total)."""
    if math.isfinite(m.get("cost", math.nan)):
        return
    parts = [v for k, v in m.items() if k.endswith("_cost") and k != "cost" and math.isfinite(v)]
    if parts:
        m["cost"] = float(sum(parts))


def render(out: Path, figures: bool = True) -> dict[str, Path]:
    """Rebuild the report of the experiment in OUT; the files written, by role."""
    out = Path(out)
    path = out / "sim2real.json"
    if not path.is_file():
        raise KisimError(f"{out}: no sim2real.json (not a kisim sim2real output)")
    doc = read_json(path)
    pols, wls, seeds = list(doc["policies"]), list(doc["workloads"]), list(doc["seeds"])
    twin, twin_tl, slo = _load(out / "twin", pols, wls, seeds)
    real, real_tl, slo_r = _load(out / "real", pols, wls, seeds)
    if not twin and not real:
        raise KisimError(f"{out}: no complete runs under twin/ or real/")
    names = [m.name for m in cmp.METRICS]
    side = cmp.side_by_side(twin, real, pols, wls, names)
    tau = cmp.kendall_table(twin, real, pols, wls, names)
    verdicts = cmp.verdict_table(twin, real, pols, wls, cmp.METRICS)
    ref = str(doc.get("reference") or pols[0])
    beats = [{"workload": w, "policy": p, "reference": ref, "side": s,
              **dict(zip(("beats", "why"), cmp.beats(c, p, ref, w), strict=True))}
             for w in wls for p in pols if p != ref
             for s, c in (("twin", twin), ("real", real))]  # fmt: skip
    files = {"side_by_side": out / "side_by_side.csv", "kendall": out / "kendall.csv",
             "verdicts": out / "verdicts.csv", "beats": out / "beats.csv",
             "json": out / "sim2real-report.json", "report": out / "report.md"}  # fmt: skip
    write_csv(files["side_by_side"], side, cmp.SIDE_COLUMNS)
    write_csv(files["kendall"], tau, cmp.KENDALL_COLUMNS)
    write_csv(files["verdicts"], verdicts, cmp.VERDICT_COLUMNS)
    write_csv(files["beats"], beats, BEATS_COLUMNS)
    counts = {"twin": _count(twin, pols, wls, seeds), "real": _count(real, pols, wls, seeds)}
    write_json(files["json"], {
        "experiment": {k: doc.get(k) for k in ("name", "scenario", "calibration", "backend",
                                               "policies", "workloads", "seeds", "duration_s",
                                               "reference", "tuning")},
        "runs": counts, "kendall_variant": f"tau-{cmp.KENDALL_VARIANT}", "alpha": cmp.ALPHA,
        "side_by_side": side, "kendall": tau, "verdicts": verdicts, "beats": beats,
    })  # fmt: skip
    figs = render_figures(out / "figures", side, pols, wls, twin_tl, real_tl,
                          slo or slo_r) if figures else []  # fmt: skip
    atomic_write(files["report"], _markdown(doc, side, tau, verdicts, beats, counts, figs, out,
                                            twin, real))  # fmt: skip
    return files


def _count(cells: Mapping, pols: Sequence[str], wls: Sequence[str], seeds: Sequence[int]) -> str:
    n = sum(len(cells.get((p, w), {})) for p in pols for w in wls)
    return f"{n} of {len(pols) * len(wls) * len(seeds)}"


def _f(x: object) -> float:
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _notes(doc: Mapping[str, Any]) -> list[str]:
    """What differs between the two sides, said plainly."""
    inv = doc.get("invocations") or [{}]
    host = inv[-1].get("host", {})
    loads = ", ".join(f"{i.get('started_at', '?')}: "
                      f"{_f((i.get('load_average_at_start') or [math.nan])[0]):.2f}"
                      for i in inv)  # fmt: skip
    prov = str(doc.get("calibration_provenance") or "none given").splitlines()[0]
    notes = [
        f"Run length: {fmt(_f(doc.get('duration_s')))} s per run, seeds {doc['seeds'][0]}–"
        f"{doc['seeds'][-1]} for every policy x workload on both sides; the twin's runs use the "
        f"same seeds (its random streams), the real ones one after another.",
        f"The twin uses the calibration `{doc.get('calibration_name')}` "
        f"(file: {doc.get('calibration')}); its provenance: {prov.rstrip('.')}.",
        f"Host of the last invocation: {host.get('node', '?')}, {host.get('cpus', '?')} CPUs "
        f"({host.get('processor', '?')}); 1-min load average at the start of each invocation: "
        f"{loads}. Other work on the host slows the real runs and not the twin's.",
    ]  # fmt: skip
    if doc.get("backend") == "local":
        notes += [
            "Local backend: the replicas are real Triton processes on this host, sharing its "
            "cores with Locust (the load generator) and Prometheus; a pool's `cpu` resource is "
            "its ONNX Runtime thread count, not a reserved core, and a pool of a `gpu` device "
            "would run on the CPU too (no GPU).",
            "`hpa` on the local stack has no Kubernetes HPA object: kisim runs the HPA v2 "
            "algorithm from outside on per-pod CPU read from Prometheus (ExternalHPA); in the "
            "twin it is the in-cluster HPA model on the twin's CPU utilisation.",
            "Pod start-up locally is a Triton process loading the model (seconds); there is no "
            "scheduling, image pull or node provisioning as on a cluster.",
        ]  # fmt: skip
    return notes


def _markdown(doc: Mapping[str, Any], side: Sequence[Mapping[str, Any]],
              tau: Sequence[Mapping[str, Any]], verdicts: Sequence[Mapping[str, Any]],
              beats: Sequence[Mapping[str, Any]], counts: Mapping[str, str],
              figs: Sequence[Path], out: Path, twin_cells: cmp.Cells,
              real_cells: cmp.Cells) -> str:  # fmt: skip
    pols, wls = list(doc["policies"]), list(doc["workloads"])
    inv = (doc.get("invocations") or [{}])[-1]
    L = [f"# Sim-to-real: {doc.get('name')}", "",
         f"- scenario: `{doc.get('scenario')}` ({doc.get('scenario_name')})",
         f"- real backend: `{doc.get('backend') or 'none run'}`; twin calibration: "
         f"`{doc.get('calibration_name')}`",
         f"- policies: {', '.join(f'`{p}`' for p in pols)}; reference `{doc.get('reference')}`",
         f"- workloads: {', '.join(wls)}; seeds: {len(doc['seeds'])} each",
         f"- complete runs: twin {counts['twin']}, real {counts['real']}",
         f"- last command: `{inv.get('command', '?')}` at commit `{inv.get('commit', '?')}`"]
    if doc.get("tuning"):
        t = doc["tuning"]
        L.append(f"- tuned rule baseline: `{t.get('chosen')}` ({t.get('method', '')})")
    L += ["", "## What differs between the twin and the real runs", ""]
    L += [f"- {n}" for n in _notes(doc)]
    L += ["", "## Twin vs real", "",
          "Mean ± 95 % CI half-width over seeds (Student t); gap = (twin − real) / |real|. "
          "✓: the real mean lies inside the twin's interval.", ""]  # fmt: skip
    by = {(r["workload"], r["policy"], r["metric"]): r for r in side}
    for w in wls:
        L += [f"### {w}", "", "| policy | metric | twin | real | gap |", "|---|---|---:|---:|---:|"]
        for p in pols:
            for m in cmp.METRICS:
                r = by.get((w, p, m.name))
                if r is None or not (math.isfinite(_f(r["twin_mean"]))
                                     or math.isfinite(_f(r["real_mean"]))):  # fmt: skip
                    continue
                g = _f(r["gap_pct"])
                tw = pm(_f(r["twin_mean"]), _f(r["twin_ci95_low"]), _f(r["twin_ci95_high"]))
                rl = pm(_f(r["real_mean"]), _f(r["real_ci95_low"]), _f(r["real_ci95_high"]))
                L.append(f"| `{p}` | {m.label} | {tw} | {rl} | "
                         f"{'—' if not math.isfinite(g) else f'{g:+.1f} %'}"
                         f"{' ✓' if r['real_in_twin_ci'] is True else ''} |")  # fmt: skip
        L.append("")
    L += ["## Does the twin rank the policies as reality does?", "",
          f"Kendall's τ-{cmp.KENDALL_VARIANT} (scipy.stats.kendalltau, variant "
          f"'{cmp.KENDALL_VARIANT}': ties in either ranking correct the denominator) between "
          "the policies' means in the twin and on real serving; 1 = the same order. Headline "
          f"metric: {cmp.RANK_METRIC} (the scenario's reward).", "",
          "| workload | metric | τ | p | twin ranking (best first) | real ranking |",
          "|---|---|---:|---:|---|---|"]  # fmt: skip
    short = short_labels(pols)

    def shorten(ranking: object) -> str:
        out = str(ranking)
        for p in sorted(pols, key=len, reverse=True):  # longest first: no partial replacement
            out = out.replace(p, short[p])
        return out

    for r in tau:
        t = _f(r["tau"])
        ts = "—" if not math.isfinite(t) else f"{t:.2f}"
        L.append(f"| {r['workload']} | {r['metric']} | {ts} | {fmt_p(_f(r['p']))} | "
                 f"{shorten(r['twin_ranking'])} | {shorten(r['real_ranking'])} |")  # fmt: skip
    sig = [v for v in verdicts if v["twin_winner"]]
    held = sum(v["holds"] == "yes" for v in sig)
    rev = sum(v["holds"] == "reversed" for v in sig)
    agree = sum(bool(v["agree"]) for v in verdicts)
    L += ["", "## Do the twin's verdicts hold on real serving?", "",
          f"Every pair of policies per workload x metric, paired t-test over seeds, Holm-adjusted "
          f"within each workload x metric, α = {cmp.ALPHA}. The twin gives {len(sig)} verdicts "
          f"'A beats B'; {held} hold on real serving, {rev} are reversed, the rest find no "
          f"difference there. Twin and reality agree (same winner or both undecided) on "
          f"{agree} of {len(verdicts)} comparisons; all of them are in `verdicts.csv`.", "",
          "| workload | metric | A beats B (twin) | p (twin) | real | p (real) | holds |",
          "|---|---|---|---:|---|---:|---|"]  # fmt: skip
    for v in sig:
        loser = v["b"] if v["twin_winner"] == v["a"] else v["a"]
        L.append(f"| {v['workload']} | {v['metric']} | `{v['twin_winner']}` > `{loser}` | "
                 f"{fmt_p(_f(v['twin_p_holm']))} | {v['real_winner'] or 'no difference'} | "
                 f"{fmt_p(_f(v['real_p_holm']))} | {v['holds']} |")  # fmt: skip
    ref = doc.get("reference")
    L += ["", f"## Against `{ref}` (issue 14's criterion)", "",
          "Beats: better SLO attainment at no more replica-seconds, or fewer replica-seconds at "
          "no worse SLO attainment — the improvement at paired-t p < 0.05 over the seeds, the "
          "other metric not significantly worse.", "",
          "| workload | policy | twin | real | real: why |", "|---|---|---|---|---|"]  # fmt: skip
    bb = {(b["workload"], b["policy"], b["side"]): b for b in beats}
    for w in wls:
        for p in pols:
            if p == ref:
                continue
            t, r = bb.get((w, p, "twin"), {}), bb.get((w, p, "real"), {})
            L.append(f"| {w} | `{p}` | {'beats' if t.get('beats') else 'no'} | "
                     f"{'beats' if r.get('beats') else 'no'} | {r.get('why', '')} |")  # fmt: skip
    L += _model_pairs(doc, twin_cells, real_cells)
    if figs:
        L += ["", "## Figures", ""]
        for f in figs:
            if f.suffix == ".png":
                rel = f.relative_to(out)
                L.append(f"![{f.stem}]({rel}) ([PDF]({rel.with_suffix('.pdf')}))")
    L += ["", "Files: `side_by_side.csv`, `kendall.csv`, `verdicts.csv`, `beats.csv`, "
          "`sim2real-report.json`; the runs under `twin/runs/` and `real/runs/` (with each real "
          "run's raw trace); provenance of every invocation in `sim2real.json`.", ""]  # fmt: skip
    return "\n".join(L)


PAIR_METRICS = ("episode_reward", "slo_attainment", "replica_s")


def _model_pairs(doc: Mapping[str, Any], twin: cmp.Cells, real: cmp.Cells) -> list[str]:
    """Every pair of `ppo:` models (e.g. twin-trained vs fine-tuned on real serving): the
    second's change against the first on both sides, paired t over seeds (no family)."""
    from agents.evaluation import stats

    models = [p for p in doc["policies"] if p.startswith("ppo:")]
    if len(models) < 2:
        return []
    short = short_labels(doc["policies"])
    L = ["", "## Between the PPO models", "",
         "The second model's mean minus the first's (paired t over seeds, p in brackets): "
         "does fine-tuning on real serving improve it there, and how does it move in the twin?",
         "", "| workload | A → B | metric | twin: B − A | real: B − A |", "|---|---|---|---:|---:|"]
    for w in doc["workloads"]:
        for i, a in enumerate(models):
            for b in models[i + 1:]:
                for m in PAIR_METRICS:
                    cells = []
                    for c in (twin, real):
                        r = stats.compare(cmp.seed_values(c, b, w, m), cmp.seed_values(c, a, w, m))
                        cells.append(f"{fmt(_f(r['diff']))} ({fmt_p(_f(r['paired_p']))})")
                    L.append(f"| {w} | {short[a]} → {short[b]} | {m} | {cells[0]} | {cells[1]} |")
    return L


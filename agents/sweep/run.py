"""`kisim sweep`: every grid point x policy x seed in the twin, resumable, on any executor.

The runs go through the evaluation harness (`agents.evaluation.harness.evaluate`), with the
grid points as its 'patterns': so a sweep is resumable as an evaluation is (finished runs on
disk are skipped, each run written atomically as it finishes), shows the same progress bar,
records failures without stopping, and runs in this process, in ``--jobs`` processes or on Ray
(``--ray``) with identical files. OUT after a sweep::

    sweep.json        the grid, policies, seeds, scenario and how it ran
    eval.json         the harness's manifest (status, failures)
    runs/<policy>/<point>/seed-<N>/   one directory per run (config, timeline, summary)
    summary.csv       one row per run (agents.sweep.table)
    figures/heatmap-<metric>.{png,pdf}   per metric, over two swept keys (agents.sweep.heatmap)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agents.evaluation.fanout import make_executor
from agents.evaluation.harness import EvalResult, evaluate
from agents.evaluation.policy_run import check_policies
from agents.evaluation.report import headline
from agents.sweep import grid, heatmap, table
from agents.sweep.episode import SweepEpisode
from kisim.core.config import scenario_data, scenario_fingerprint
from kisim.core.errors import KisimError
from kisim.core.guards import Limits, check, memory_watchdog
from kisim.core.outputs import check_out_dir
from kisim.core.prepare import prepare
from kisim.core.rundir import write_json
from kisim.env.presets import check_presets

MANIFEST = "sweep.json"
EXTRA_METRICS = ("episode_reward",)  # heat-mapped by default besides the headline


@dataclass
class SweepResult:
    out: Path
    points: int
    runs: int  # points x policies x seeds
    eval: EvalResult
    files: dict[str, Path] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)


def _axes(params: list[grid.Param], keys: Sequence[str]
          ) -> tuple[grid.Param, grid.Param | None]:  # fmt: skip
    """The heat map's x and y parameters: `keys` (one or two swept keys), else the first two."""
    by_key = {p.key: p for p in params}
    for k in keys:
        if k not in by_key:
            raise KisimError(f"--heatmap {k}: not a swept key ({', '.join(by_key)})")
    if len(keys) > 2 or len(set(keys)) != len(keys):
        raise KisimError("--heatmap: give one or two distinct swept keys, X[,Y]")
    chosen = [by_key[k] for k in keys] or params[:2]
    return chosen[0], chosen[1] if len(chosen) > 1 else None


def run_sweep(scenario: Path, params: Sequence[str], policies: Sequence[str], runs: int,
              out: Path, jobs: int = 1, ray: str | None = None, duration: float | None = None,
              heatmap_keys: Sequence[str] = (), metrics: Sequence[str] | None = None,
              limits: Limits | None = None, progress: bool = True,
              trust_model: bool = False) -> SweepResult:  # fmt: skip
    """Check everything (flags, scenario, every point's scenario, policies, OUT, the resource
    budget) before any run; then run what is missing, write summary.csv and the heat maps."""
    if runs < 1:
        raise KisimError(f"--runs {runs}: must be >= 1")
    if jobs < 0:
        raise KisimError(f"--jobs {jobs}: must be >= 1, or 0 for one per CPU")
    pols = list(policies)
    if not pols:
        raise KisimError("--policies: empty list (give comma-separated names)")
    check_policies(pols, trust_model)
    ps = grid.parse_params(params)
    x, y = _axes(ps, heatmap_keys)
    base = prepare(scenario, None, None, duration)
    check_presets(base)
    grid.check_keys(base, ps)
    pts = grid.points(ps)
    limits = limits or Limits()
    par = jobs or os.cpu_count() or 1
    over: dict[str, dict[str, object]] = {}
    for pt in pts:
        sc = grid.apply(base, ps, pt)
        check_presets(sc)
        check(sc, limits, parallel=par, source=f"--param {grid.label(pt)}")
        over[grid.label(pt)] = grid.overrides(ps, pt)
    check_out_dir(out)
    seeds = list(range(runs))
    fp = scenario_fingerprint(base)
    executor = make_executor(jobs, ray)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MANIFEST, {
        "format": "kisim-sweep/1", "scenario": str(scenario), "fingerprint": fp,
        "params": {p.key: list(p.texts) for p in ps}, "policies": pols, "seeds": seeds,
        "heatmap": [x.key, *([y.key] if y else [])], "executor": executor.name,
    })  # fmt: skip
    episode = SweepEpisode(scenario_data(base), over, trust_model)
    labels = [grid.label(pt) for pt in pts]
    try:
        with memory_watchdog(limits):
            ev = evaluate(pols, labels, seeds, out, episode, jobs=jobs, reference=pols[0],
                          progress=progress, fingerprint=fp, executor=executor, render=False,
                          meta={"scenario": str(scenario), "sweep": True})  # fmt: skip
    finally:
        executor.close()
    res = SweepResult(out, len(pts), len(pts) * len(pols) * len(seeds), ev)
    found, cols = table.rows(out, pts, pols, seeds)
    res.files["summary"] = table.write_summary(out, [p.key for p in ps], found, cols)
    want = list(metrics) if metrics is not None else [*headline(set(cols)), *EXTRA_METRICS]
    unknown = [m for m in want if m not in cols and metrics is not None]
    if unknown and found:
        raise KisimError(f"--metrics {unknown[0]}: not in the runs' summaries "
                         f"(known: {', '.join(cols)})")  # fmt: skip
    others = [p.key for p in ps if p.key not in {x.key, y.key if y else None}]
    for m in [m for m in want if m in cols]:
        res.figures += heatmap.heatmap(found, m, x, y, pols, others, out / "figures")
    return res

"""`kisim benchmark`: tune the rule baselines, evaluate everything, write the leaderboard.

For each scenario (a folder's ``*.yaml`` in name order, or the files given):

1. **tune** every rule-based opponent (`agents.benchmark.opponents`: its grid) and the best
   constant configuration on *training* seeds (`agents.benchmark.tuning`), under
   ``OUT/<scenario>/tuning/<opponent>/`` (``tuning.json`` each);
2. **evaluate** - through the evaluation harness (common random numbers, resumable, ``--jobs``
   processes) - the best constant, every opponent untuned (upstream defaults) and tuned, any
   extra policies (``ppo:PATH``), and the clairvoyant oracle, on the *evaluation* seeds
   0 .. runs - 1, under ``OUT/<scenario>/eval/`` (its own report.md, summary.csv, ...);
3. **rank**: `agents.benchmark.leaderboard` over every scenario: ``OUT/leaderboard.{csv,md,
   tex,html}``, ``OUT/figures/pareto-<scenario>.{png,pdf}``, and ``OUT/tuned.json`` (every
   opponent's tuned spec per scenario).

A rerun with the same OUT skips every finished run and search. The sections of scenarios
OUT holds but this run leaves out are rebuilt from OUT's seeds.csv (`agents.benchmark.stored`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agents.benchmark import leaderboard, tuning
from agents.benchmark.episode import ScenarioEpisode, label
from agents.benchmark.opponents import (
    OPPONENTS,
    constant_grid,
    family,
    family_hpa,
    family_rules,
    platform_constant_grid,
)
from agents.benchmark.setups import constant_specs, setups, tune_with_setup
from agents.benchmark.stored import stored_boards
from agents.evaluation.executor import using
from agents.evaluation.fanout import make_executor
from agents.evaluation.harness import evaluate
from agents.evaluation.headroom import oracle_spec
from agents.evaluation.policy_run import check_policies
from kisim.core.config import Scenario, scenario_data, scenario_fingerprint
from kisim.core.errors import KisimError
from kisim.core.guards import Limits, check, memory_watchdog
from kisim.core.outputs import check_out_dir
from kisim.core.prepare import prepare
from kisim.core.rundir import collect_runs, safe_name, write_json
from kisim.env.presets import check_presets

DEFAULT_SUITE = Path("configs/scenarios/suite")


@dataclass
class BenchResult:
    out: Path
    scenarios: list[str]
    files: dict[str, Path] = field(default_factory=dict)
    boards: list[leaderboard.Board] = field(default_factory=list)
    failed: int = 0


def scenario_files(spec: Sequence[Path]) -> list[Path]:
    """A folder's ``*.yaml`` (sorted) or the files themselves; bad input -> KisimError."""
    files: list[Path] = []
    for p in spec:
        if p.is_dir():
            found = sorted(p.glob("*.yaml"))
            if not found:
                raise KisimError(f"--scenarios {p}: no *.yaml in this folder")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise KisimError(f"--scenarios {p}: no such file or folder")
    stems = [f.stem for f in files]
    dup = {s for s in stems if stems.count(s) > 1}
    if dup:
        raise KisimError(f"--scenarios: two scenarios named '{sorted(dup)[0]}'")
    return files


def question(path: Path, sc: Scenario) -> str:
    """The question a suite file opens with (its first comment lines), else its description."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(x for x in lines if x)
    return text or sc.description


def split_extra(spec: str) -> tuple[str | None, str]:
    """``SCENARIO=POLICY`` (that scenario only, e.g. a PPO model trained on it) or ``POLICY``
    (every scenario) -> (scenario stem or None, policy spec)."""
    only, sep, policy = spec.partition("=")
    if sep and ":" not in only and "/" not in only:
        return only.strip(), policy.strip()
    return None, spec


def run_benchmark(scenarios: Sequence[Path], out: Path, runs: int = 10, train: int = 4,
                  jobs: int = 1, opponents: Sequence[str] | None = None, oracle: bool = True,
                  extra: Sequence[str] = (), duration: float | None = None,
                  progress: bool = True, limits: Limits | None = None,
                  trust_model: bool = False, ray: str | None = None,
                  oracle_runs: int | None = None) -> BenchResult:  # fmt: skip
    """Everything is checked (flags, scenario files, policies, OUT) before any run. `ray`
    (HOST:PORT, or "local") runs every tuning and evaluation run on Ray. `oracle_runs`: the
    oracle's evaluation seeds 0 .. oracle_runs - 1 (default: `runs`; its search costs hundreds
    of ordinary runs per episode: about 5 CPU-minutes on hetero)."""
    if runs < 2:
        raise KisimError(f"--runs {runs}: must be >= 2 (a confidence interval needs two seeds)")
    if runs > tuning.TRAIN_SEED0:
        raise KisimError(f"--runs {runs}: at most {tuning.TRAIN_SEED0} (training seeds start "
                         f"at {tuning.TRAIN_SEED0})")  # fmt: skip
    if train < 1:
        raise KisimError(f"--train-seeds {train}: must be >= 1")
    oracle_runs = runs if oracle_runs is None else oracle_runs
    if not 2 <= oracle_runs <= runs:
        raise KisimError(f"--oracle-runs {oracle_runs}: must lie in 2..--runs ({runs})")
    if jobs < 0:
        raise KisimError(f"--jobs {jobs}: must be >= 1, or 0 for one per CPU")
    given = list(opponents) if opponents is not None else None
    unknown = [o for o in given or [] if o not in OPPONENTS]
    if unknown:
        raise KisimError(f"--opponents: unknown '{unknown[0]}' (known: {', '.join(OPPONENTS)})")
    if given is not None and "hpa" not in given and "platform-hpa" not in given:
        raise KisimError("--opponents: must include hpa (the oracle margin is measured from "
                         "tuned HPA; platform-hpa for the platform family)")  # fmt: skip
    files = scenario_files(scenarios)
    check_policies([spec for _, spec in (split_extra(e) for e in extra)], trust_model)
    stems = {f.stem for f in files}
    prepared = []
    for f in files:
        sc = prepare(f, None, None, duration)
        check_presets(sc)
        own = family_rules(sc)  # each scenario's family: its own opponents and HPA reference
        opps = [o for o in given if o in own] if given is not None else list(own)
        if family_hpa(sc) not in opps:
            raise KisimError(f"--opponents: scenario {f.stem} ({family(sc)} family) needs "
                             f"{family_hpa(sc)} among them")  # fmt: skip
        prepared.append((f, sc, opps))
    check_out_dir(out)
    kept, kept_tuned = stored_boards(out, stems, list(range(runs)),
                                     list(range(oracle_runs)) if oracle else None, duration,
                                     question)  # fmt: skip
    kept_policies = {b.scenario: {e.policy for e in b.entries} for b in kept}
    for e in extra:
        only, pol = split_extra(e)
        if only is None or only in stems:
            continue
        if only not in kept_policies:
            raise KisimError(f"--extra {e}: no scenario '{only}' in the benchmark "
                             f"({', '.join(sorted(stems | set(kept_policies)))})")  # fmt: skip
        if pol not in kept_policies[only]:
            raise KisimError(f"--extra {e}: scenario {only} is kept from {out}/seeds.csv, "
                             "which does not have this policy; add it to --scenarios")  # fmt: skip
    limits = limits or Limits()
    par = jobs or os.cpu_count() or 1
    for _, sc, _ in prepared:
        check(sc, limits, parallel=par)
    out.mkdir(parents=True, exist_ok=True)
    res = BenchResult(out, [f.stem for f in files])
    tuned_all: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=sum(len(o) + 3 for _, _, o in prepared), desc="benchmark", unit="step",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)  # fmt: skip
    with memory_watchdog(limits), using(make_executor(jobs, ray)):
        try:
            for f, sc, opps in prepared:
                board, tuned = _one(f, sc, out, runs, train, jobs, opps,
                                    oracle_runs if oracle else 0, extra, progress, bar,
                                    trust_model)  # fmt: skip
                res.boards.append(board)
                tuned_all[f.stem] = tuned
        finally:
            bar.close()
    if kept:
        res.boards = sorted(res.boards + kept, key=lambda b: b.scenario)
        tuned_all = dict(sorted((kept_tuned | tuned_all).items()))
    write_json(out / "tuned.json", tuned_all)
    meta = {"scenarios": ", ".join(b.scenario for b in res.boards),
            "evaluation seeds": f"0–{runs - 1}",
            "training seeds": f"{tuning.TRAIN_SEED0}–{tuning.TRAIN_SEED0 + train - 1}",
            "tuning": "successive halving on the scenario's reward (docs/benchmark.md)"}
    if oracle and oracle_runs < runs:
        meta["oracle's evaluation seeds"] = f"0–{oracle_runs - 1}"
    if kept:
        meta["kept from seeds.csv (not rerun)"] = ", ".join(b.scenario for b in kept)
    res.files = leaderboard.write(res.boards, out, meta)
    return res


def _one(f: Path, sc: Scenario, out: Path, runs: int, train: int, jobs: int,
         opps: list[str], oracle_runs: int, extra: Sequence[str], progress: bool, bar: Any,
         trust_model: bool) -> tuple[leaderboard.Board, dict[str, Any]]:  # fmt: skip
    fp = scenario_fingerprint(sc)
    data = scenario_data(sc)
    pat = label(sc)
    root = out / safe_name(f.stem)
    seeds = tuning.train_seeds(train)
    tuned: dict[str, Any] = {}
    roles: dict[str, str] = {}
    options = setups(sc) if sc.platform is None else []  # the operator's choices (setups.py)

    def tune(name: str, grid: Sequence[str], where: Path) -> dict[str, Any]:
        return tuning.tune(data, pat, name, grid, seeds, where, fp, jobs, progress)

    for name in ["constant", *opps]:
        bar.set_postfix_str(f"{f.stem}: tune {name}")
        where = root / "tuning" / name
        if name == "constant":
            grid = (platform_constant_grid(sc) if sc.platform is not None
                    else constant_specs(sc) if options else constant_grid(sc))  # fmt: skip
            r = tune(name, grid, where)
        elif options:
            grid = OPPONENTS[name].grid(sc)
            r = tune_with_setup(name, OPPONENTS[name].untuned, grid, options, where, tune)
        else:
            grid = OPPONENTS[name].grid(sc)
            r = tune(name, grid, where)
        tuned[name] = {"spec": r["chosen"], "train_mean_reward": r["chosen_mean_reward"],
                       "grid_size": len(grid)}  # fmt: skip
        if "steps" in r:
            tuned[name] |= {"setups": options, "steps": r["steps"]}
        bar.update(1)
    roles[tuned["constant"]["spec"]] = "best constant"
    for name in opps:
        roles.setdefault(OPPONENTS[name].untuned, f"untuned {name}")
        roles[tuned[name]["spec"]] = f"tuned {name}"
    for e in extra:
        only, p = split_extra(e)
        if only is None or only == f.stem:
            roles.setdefault(p, "extra")
    policies = list(roles)
    hpa = family_hpa(sc)
    ref = tuned[hpa]["spec"]
    bar.set_postfix_str(f"{f.stem}: evaluate {len(policies)} policies")
    ev, episode = root / "eval", ScenarioEpisode(data, trust_model)
    meta = {"scenario": str(f), "benchmark": "evaluation seeds"}
    evaluate(policies, [pat], list(range(runs)), ev, episode, jobs=jobs, reference=ref,
             progress=progress, fingerprint=fp, figures=False, meta=meta)  # fmt: skip
    records = collect_runs(ev, policies, [pat], list(range(runs)))
    # it must see past the slow-case start-up, or it never starts a slow pod; the oracle plans
    # the front door's replicas only, so the platform family has none
    if oracle_runs and sc.platform is None:
        orc, od, oseeds = oracle_spec(sc), root / "oracle", list(range(oracle_runs))
        bar.set_postfix_str(f"{f.stem}: oracle on {oracle_runs} seeds")
        evaluate([orc], [pat], oseeds, od, episode, jobs=jobs, reference=orc,
                 progress=progress, fingerprint=fp, figures=False, meta=meta)  # fmt: skip
        records += collect_runs(od, [orc], [pat], oseeds)
        roles.setdefault(orc, "oracle")
    bar.update(1)
    spec_of = {k: v["spec"] for k, v in tuned.items()}
    board = leaderboard.build(f.stem, question(f, sc), sc, records, roles, spec_of, hpa)
    write_json(root / "tuned.json", {"roles": roles, "tuned": tuned})
    bar.update(1)
    return board, tuned

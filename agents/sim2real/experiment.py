"""Run a sim-to-real experiment: every run on real serving and in the twin, then the report.

Both sides go through the evaluation harness (`agents.evaluation.harness.evaluate`): the twin's
runs under ``OUT/twin`` (in parallel, calibration fitted for the real backend), the real ones
under ``OUT/real`` (one after another, `RealEpisode`: fresh servers per run, raw trace kept).
Each finished run is written atomically with its ``summary.json`` last, so a rerun with the
same OUT skips it and a killed run is redone; Ctrl-C / SIGTERM stop cleanly (the harness's
`Interrupted`). ``OUT/sim2real.json`` keeps the provenance of every invocation (command,
commit, host, load average at start) and the experiment's settings.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.evaluation.harness import EvalResult, evaluate
from agents.evaluation.policy_run import TwinEpisode, check_policies
from agents.evaluation.run import RealTarget
from agents.sim2real.spec import Sim2RealSpec
from kisim.core.config import (
    Scenario,
    load_calibration,
    scenario_data,
    scenario_fingerprint,
    validated,
)
from kisim.core.errors import KisimError
from kisim.core.guards import Limits, memory_watchdog
from kisim.core.host import cpu_model
from kisim.core.outputs import check_out_dir
from kisim.core.prepare import prepare
from kisim.core.rundir import read_json, write_json
from kisim.env.presets import check_presets

PROVENANCE = "sim2real.json"


@dataclass
class Sim2RealResult:
    out: Path
    twin: EvalResult | None = None
    real: EvalResult | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(len(r.failed) for r in (self.twin, self.real) if r is not None)


def twin_scenario(spec: Sim2RealSpec) -> Scenario:
    """The experiment's scenario: the file, its duration override, the fitted calibration."""
    sc = prepare(spec.scenario, None, None, spec.duration_s)
    if spec.calibration is not None:
        data = sc.model_dump(mode="json")
        data["calibration"] = load_calibration(spec.calibration).model_dump(mode="json")
        sc = validated(Scenario, data, f"{spec.calibration} (calibration)")
    check_presets(sc)
    return sc


def check_spec(spec: Sim2RealSpec, sc: Scenario, trust_model: bool) -> None:
    """Unknown workloads or policies end the command before any run."""
    from kisim.core.patterns import PATTERNS

    for w in spec.workloads:
        if w not in PATTERNS:
            raise KisimError(f"workload '{w}': not a load pattern (known: {', '.join(PATTERNS)})")
    check_policies(spec.policies, trust_model)
    ref = spec.reference or ("hpa" if "hpa" in spec.policies else spec.policies[0])
    if ref not in spec.policies:
        raise KisimError(f"reference '{ref}' is not among the policies")


def _commit() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                           text=True, timeout=10, check=False)  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "agents",
                                "kisim", "twin", "bridge", "calibration", "configs"],
                               capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
        return r.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(argv: list[str]) -> dict[str, Any]:
    """What a reader needs to trust the numbers: command, commit, host, load at start."""
    return {
        "command": " ".join(argv), "commit": _commit(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"node": platform.node(), "machine": platform.machine(),
                 "cpus": os.cpu_count(), "python": platform.python_version(),
                 "processor": cpu_model() or "unknown"},
        "load_average_at_start": list(os.getloadavg()),
    }  # fmt: skip


def _record(out: Path, spec: Sim2RealSpec, sc: Scenario, real: RealTarget | None,
            argv: list[str], tuning: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
    path = out / PROVENANCE
    old = read_json(path) if path.is_file() else {}
    doc = {
        "format": "kisim-sim2real/1", "name": spec.name, "description": spec.description,
        "scenario": str(spec.scenario), "scenario_name": sc.name,
        "calibration": str(spec.calibration) if spec.calibration else "the scenario's own",
        "calibration_name": sc.calibration.name,
        "calibration_provenance": sc.calibration.provenance,
        "policies": spec.policies, "workloads": spec.workloads,
        "seeds": list(range(spec.seeds)), "duration_s": sc.duration_s,
        "reference": spec.reference or ("hpa" if "hpa" in spec.policies else spec.policies[0]),
        "backend": real.backend if real else old.get("backend"),
        "tuning": tuning or old.get("tuning"),
        "invocations": [*old.get("invocations", []), provenance(argv)],
    }  # fmt: skip
    write_json(path, doc)
    return doc


def run_sim2real(spec: Sim2RealSpec, out: Path, real: RealTarget | None, jobs: int = 1,
                 limits: Limits | None = None, trust_model: bool = False,
                 argv: list[str] | None = None, progress: bool = True,
                 figures: bool = True, tune: bool = False) -> Sim2RealResult | None:  # fmt: skip
    """The twin's runs, then the real ones (`real` None: the twin only, e.g. to check the
    pipeline), then the report. `tune`: first tune the rule baseline on the twin
    (`agents.sim2real.tune`) and run the chosen spec in its place. Returns None for a dry run
    (it prints the plan)."""
    from agents.sim2real.report import render
    from agents.sim2real.tune import tune_rule, with_tuned

    sc = twin_scenario(spec)
    check_spec(spec, sc, trust_model)
    tuning = None
    if tune and not (real is not None and real.dry_run):
        check_out_dir(out)
        tuning = tune_rule(spec, sc, out / "tuning", jobs=jobs, progress=progress)
        tuning = {k: tuning[k] for k in ("opponent", "chosen", "method", "seeds", "scores")}
        spec = spec.model_copy(update={"policies": with_tuned(spec.policies,
                                                              spec.tune.opponent,
                                                              tuning["chosen"])})  # fmt: skip
        print(f"tuned on the twin: {spec.tune.opponent} -> {tuning['chosen']}", file=sys.stderr)
    if real is not None:
        from agents.evaluation.real_episode import check_real, plan

        check_real(sc, spec.policies, real.backend, real.kube(), real.prometheus_url)
        if real.dry_run:
            n = len(spec.policies) * len(spec.workloads) * spec.seeds
            print(f"dry run: {n} real runs of {sc.duration_s:g} s on the {real.backend} backend "
                  f"(~{n * (sc.duration_s + 15) / 3600:.1f} h with start-up), and {n} twin runs")
            for line in plan(sc, spec.policies, real.backend, real.kube()):
                print(line)
            return None
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    doc = _record(out, spec, sc, real, argv or sys.argv, tuning)
    seeds = list(range(spec.seeds))
    res = Sim2RealResult(out)
    meta = {"scenario": str(spec.scenario), "sim2real": spec.name}
    with memory_watchdog(limits or Limits()):
        res.twin = evaluate(spec.policies, spec.workloads, seeds, out / "twin",
                            TwinEpisode(scenario_data(sc), trust_model), jobs=jobs,
                            reference=doc["reference"], progress=progress,
                            fingerprint=scenario_fingerprint(sc, "twin"),
                            meta={**meta, "backend": "twin"}, figures=False)  # fmt: skip
        if real is not None:
            from agents.evaluation.real_episode import RealEpisode

            ep = RealEpisode(scenario_data(sc), real.backend, real.kube(), real.prometheus_url,
                             trust_model=trust_model)  # fmt: skip
            res.real = evaluate(spec.policies, spec.workloads, seeds, out / "real", ep, jobs=1,
                                reference=doc["reference"], progress=progress,
                                fingerprint=scenario_fingerprint(sc, real.backend),
                                meta={**meta, "backend": real.backend}, figures=False)  # fmt: skip
    res.files = render(out, figures=figures)
    return res

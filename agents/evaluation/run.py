"""Run an evaluation (twin or real) from a scenario file: what `kisim eval` and the demo call.

The command line only parses and prints; loading, checking, the real target and the
SIGTERM-as-Ctrl-C handling live here so the demo and tests call the same function.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kisim.core.config import Scenario, scenario_data, scenario_fingerprint
from kisim.core.errors import KisimError
from kisim.core.guards import Limits, check, memory_watchdog
from kisim.core.outputs import check_out_dir
from kisim.core.prepare import prepare
from kisim.env.presets import check_presets


@dataclass(frozen=True)
class RealTarget:
    """Where `kisim eval --real` runs: the backend and, for Kubernetes, which cluster."""

    backend: str = "local"
    kubeconfig: Path | None = None
    context: str | None = None
    namespace: str | None = None
    prometheus_url: str | None = None
    dry_run: bool = False
    inject: str = ""  # real faults on a schedule (--inject, bridge.faults), "" for none

    def kube(self) -> dict[str, Any] | None:
        if self.backend != "kubernetes":
            return None
        from bridge.kube_settings import KubeSettings

        d: dict[str, Any] = {"kubeconfig": self.kubeconfig, "context": self.context,
                             "dry_run": self.dry_run}  # fmt: skip
        if self.namespace:
            d["namespace"] = self.namespace
        return json.loads(KubeSettings(**d).model_dump_json())


def _check_counts(policies: list[str], patterns: list[str], runs: int, jobs: int,
                  first_seed: int = 0) -> None:
    for flag, xs in (("--policies", policies), ("--patterns", patterns)):
        if not xs:
            raise KisimError(f"{flag}: empty list (give comma-separated names)")
    if runs < 1:
        raise KisimError(f"--runs {runs}: must be >= 1")
    if jobs < 0:
        raise KisimError(f"--jobs {jobs}: must be >= 1, or 0 for one per CPU")
    if first_seed < 0:
        raise KisimError(f"--first-seed {first_seed}: must be >= 0")


def run_eval(scenario: Path, policies: list[str], patterns: list[str], runs: int, out: Path,
             jobs: int, duration: float | None, reference: str | None,
             real: RealTarget | None = None, limits: Limits | None = None,
             trust_model: bool = False, ray: str | None = None,
             first_seed: int = 0) -> object:  # fmt: skip
    """Check everything (flags, scenario, policies, OUT, the resource budget), then evaluate
    under the memory watchdog; Ctrl-C / SIGTERM end in `Interrupted` (harness.evaluate).
    `ray` (HOST:PORT, or "local") runs the twin runs on Ray (agents.evaluation.ray_executor).
    Seeds are first_seed .. first_seed + runs - 1: 0.. are the evaluation seeds every report
    uses, so choosing between models on other seeds (100000.., as training's held-out
    evaluation) never looks at the seeds they are then reported on."""
    import os

    from agents.evaluation.executor import using
    from agents.evaluation.fanout import make_executor
    from agents.evaluation.harness import evaluate
    from agents.evaluation.policy_run import TwinEpisode, check_policies
    from kisim.core.patterns import PATTERNS

    _check_counts(policies, patterns, runs, jobs, first_seed)
    if ray is not None and real is not None:
        raise KisimError("--ray runs twin episodes; real runs go one after another (drop --ray)")
    sc = prepare(scenario, None, None, duration)
    check_presets(sc)
    check_policies(policies, trust_model)
    for p in patterns:
        if p not in PATTERNS:
            raise KisimError(f"unknown pattern '{p}' (known: {', '.join(PATTERNS)})")
    limits = limits or Limits()
    if real is None:
        n = len(policies) * len(patterns) * runs
        check(sc, limits, parallel=min(jobs or os.cpu_count() or 1, n))
    check_out_dir(out)
    salt = ""  # a twin evaluation, a real one and a faulted one never share OUT
    ref = reference if reference is not None else ("hpa" if "hpa" in policies else policies[0])
    meta: dict[str, Any] = {"scenario": str(scenario), "backend": "twin",
                            "duration_s": sc.duration_s}  # fmt: skip
    episode: Any = TwinEpisode(scenario_data(sc), trust_model)
    if real is not None:
        from agents.evaluation.real_episode import RealEpisode, check_real

        kube = real.kube()
        check_real(sc, policies, real.backend, kube, real.prometheus_url)
        if real.inject:
            from bridge.faults import check_faults, parse_faults

            check_faults(parse_faults(real.inject), real.backend, out)
        if real.dry_run:
            return _dry_run(sc, policies, patterns, runs, real)
        if jobs != 1:
            print("note: real runs are sequential (--jobs ignored)", file=sys.stderr)
        jobs = 1
        episode = RealEpisode(scenario_data(sc), real.backend, kube, real.prometheus_url,
                              trust_model=trust_model, faults=real.inject)  # fmt: skip
        meta["backend"] = real.backend
        if kube is not None:
            meta.update(context=real.context, namespace=kube["namespace"])
        salt += real.backend
        if real.inject:
            meta["inject"] = real.inject
            salt += f" inject {real.inject}"
    with memory_watchdog(limits), using(make_executor(jobs, ray)):
        return evaluate(
            policies, patterns, list(range(first_seed, first_seed + runs)), out, episode,
            jobs=jobs, reference=ref,
            fingerprint=scenario_fingerprint(sc, salt), meta=meta,
        )  # fmt: skip


def _dry_run(sc: Scenario, policies: list[str], patterns: list[str], runs: int,
             real: RealTarget) -> None:  # fmt: skip
    """Print what the real evaluation would do and change; start and change nothing."""
    from agents.evaluation.real_episode import plan

    n = len(policies) * len(patterns) * runs
    print(f"dry run: {n} real runs of {sc.duration_s:g} s ({n * sc.duration_s / 60:.0f} min of "
          f"load) on the {real.backend} backend, one after another")  # fmt: skip
    for line in plan(sc, policies, real.backend, real.kube()):
        print(line)
    if real.inject:
        print(f"each run: inject {real.inject} (docs/faults.md)")


def on_sigterm(fn: Callable[..., Any], *args: Any) -> Any:
    """SIGTERM cleans up like Ctrl-C: real servers stopped, replicas restored, runs kept."""
    import signal

    def _term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _term)
    try:
        return fn(*args)
    finally:
        signal.signal(signal.SIGTERM, old)

"""One evaluation run on real serving: the same policy, env and run directory as the twin's.

`RealEpisode` is the `kisim eval --real` counterpart of `agents.evaluation.policy_run.TwinEpisode`:
it builds a fresh real backend per run (local Triton processes, or a Kubernetes cluster
restored to its original replicas afterwards), runs the policy through `KisimEnv` with
`run_policy`, keeps the raw trace under ``RUN/trace/`` and writes the run directory with
`write_run` (``summary.json`` last, so an interrupted run is retried on a rerun). Runs are
never parallel: one serving system cannot host two experiments at once.

`faults` (``--inject``, `bridge.faults`) breaks the local stack on a schedule during every
run; the faults land in ``trace/events.csv`` and the summary counts what the env saw:
``metrics_missing_windows`` (Windows without Prometheus figures) and the request
accounting ``sent = served + errors + in_flight_end`` over the episode's Windows.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.evaluation.policy_run import run_policy, write_policy_run
from kisim.core.backend import Backend
from kisim.core.config import Scenario, with_pattern


@dataclass(frozen=True)
class RealEpisode:
    scenario: dict[str, Any]  # resolved scenario JSON
    backend: str  # local | kubernetes
    kube: dict[str, Any] | None = None  # bridge.kube_settings.KubeSettings fields
    prometheus_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in every summary
    trust_model: bool = False  # ppo:PATH may unpickle its files (--trust-model)
    faults: str = ""  # --inject schedule (bridge.faults.parse_faults), "" for none

    def __call__(self, policy: str, pattern: str, seed: int, run_dir: Path) -> None:
        from agents.policies import make_policy
        from bridge.factory import make_backend
        from bridge.faults import FaultInjector, parse_faults
        from bridge.kube_settings import KubeSettings
        from bridge.trace import write_events, write_trace

        sc = with_pattern(Scenario.model_validate(self.scenario), pattern)
        trace = run_dir / "trace"
        work = run_dir / ".work"
        shutil.rmtree(trace, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        kube = KubeSettings.model_validate(self.kube) if self.kube is not None else None
        backend = make_backend(self.backend, work, kube, self.prometheus_url)
        faults = parse_faults(self.faults)
        if faults:
            backend.faults = FaultInjector(faults, run_dir)
        got: dict[str, Any] = {}

        def keep_trace(b: Backend) -> None:
            backend.restore_faults()  # Prometheus back before its series are read
            got.update(write_trace(backend, trace))
            got.update(accounting(backend))

        try:
            pol = make_policy(policy, self.trust_model)
            run = run_policy(pol, sc, seed, backend=backend, on_end=keep_trace)
        finally:
            backend.close()
            write_events(backend, trace)
            shutil.rmtree(work, ignore_errors=True)
        write_policy_run(run_dir, run, policy, pattern, seed, self.backend, {**got, **self.extra})


def accounting(b: Any) -> dict[str, Any]:
    """What the summary says of requests and metrics under faults: every request sent in
    the episode is served, failed (errors) or still in flight at its end; and how many
    Windows had no Prometheus figures."""
    log = b.load.log
    t0, t1 = b.t0_unix, b.t0_unix + b.now
    sent = log.window(t0, t1).offered if log is not None else 0
    done = sum(w.served + w.errors for w in b.windows)
    out: dict[str, Any] = {"sent": sent, "in_flight_end": sent - done,
                           "metrics_missing_windows": sum(b.metrics_missing)}  # fmt: skip
    if b.faults is not None:
        out["faults"] = ",".join(f.spec() for f in b.faults.faults)
        out["fault_events"] = sum(e.kind == "fault" for e in b.faults.events)
    return out


def _run_scenario(spec: str, sc: Scenario, backend: str) -> Scenario:
    """The scenario a policy's runs start from, in-cluster controller as the env sets it."""
    from agents.policies import make_policy
    from kisim.core.config import override
    from kisim.env.actions import ACTIONS

    pol = make_policy(spec).for_backend(backend != "local")
    run_sc = pol.scenario(sc)
    need = ACTIONS[pol.action or run_sc.env.action].controller  # None: the scenario's (ppo)
    if need is not None and run_sc.controller.name != need:
        run_sc = override(run_sc, f"policy {spec}", **{"controller.name": need})
    return run_sc


def check_real(sc: Scenario, policies: list[str], backend: str, kube: dict[str, Any] | None,
               prometheus_url: str | None) -> None:  # fmt: skip
    """Everything that would fail a real run for a reason known now ends the command now."""
    from bridge.factory import check_kind
    from kisim.core.errors import KisimError

    if sc.faults.active:
        raise KisimError(f"scenario {sc.name}: faults: the fault schedule is simulated by the "
                         "twin only; on real serving inject faults with --inject "
                         "(docs/faults.md)")  # fmt: skip
    check_kind(backend, kube if backend == "local" else None, prometheus_url)
    if backend == "local":
        from bridge.paths import missing_setup

        missing = missing_setup()
        if missing is not None:
            raise KisimError(f"--backend local: {missing} (run scripts/setup-bridge.sh)")
    elif not prometheus_url:
        raise KisimError("--backend kubernetes needs --prometheus-url (the cluster's Prometheus)")
    for spec in policies:
        _run_scenario(spec, sc, backend)  # a policy that cannot run here fails now


def plan(sc: Scenario, policies: list[str], backend: str,
         kube: dict[str, Any] | None) -> list[str]:  # fmt: skip
    """What each policy's runs would start and change, one line each (``--dry-run``).

    Kubernetes: the actuator runs in its own dry-run mode, which reads the cluster and
    prints each write it would make (scale, HPA create/delete, the final restore)."""

    lines: list[str] = []
    for spec in policies:
        run_sc = _run_scenario(spec, sc, backend)
        pools = ", ".join(f"{p} {c.replicas} replicas (bounds {c.min_replicas}-{c.max_replicas})"
                          for p, c in run_sc.pools.items())  # fmt: skip
        lines.append(f"policy {spec}: controller {run_sc.controller.name}; start with {pools}")
        if backend == "kubernetes":
            from bridge.backend import set_controller
            from bridge.kube import KubeActuator
            from bridge.kube_settings import KubeSettings

            act = KubeActuator(KubeSettings.model_validate({**(kube or {}), "dry_run": True}),
                               echo=lambda m: lines.append(f"  {m}"))  # fmt: skip
            try:
                act.start(run_sc)
                set_controller(act, run_sc)
            finally:
                act.close()
        else:
            n = sum(c.replicas for c in run_sc.pools.values())
            lines.append(f"  would start {n} Triton processes, a Prometheus and Locust, "
                         "all on 127.0.0.1, and stop them after each run")  # fmt: skip
            if spec.split(":")[0] == "hpa":
                lines.append("  no HPA object locally: kisim runs the HPA v2 algorithm from "
                             "outside on the replicas' CPU in Prometheus")  # fmt: skip
    return lines

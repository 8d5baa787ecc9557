"""`hpa` on a backend without an HPA object (the local stack): the policy becomes
`ExternalHPA`, which runs the controller's algorithm from outside. Driven here by a FAKE
pod lister (a dataclass answering `pod_views`), so the decision can be checked against
the HPA formula; tests/bridge/test_local_hpa.py runs it on real replicas."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from agents.policies import make_policy
from agents.policies.hpa import HPA, ExternalHPA
from kisim.core.config import load_scenario
from kisim.core.window import Window

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakePodLister:
    """Answers `pod_views` with fixed CPU use per pod (cores); records the windows asked."""

    usage: dict[str, float]
    asked: list[float] = field(default_factory=list)

    def pod_views(self, pool: str, window_s: float) -> list[object]:
        from kisim.core.backend import PodView

        self.asked.append(window_s)
        return [PodView(name, 0.0, 5.0, False, 2.0, u, 100.0, window_s)
                for name, u in self.usage.items()]  # fmt: skip


def _w(cpu_desired: int) -> Window:

    base = {c: 0 for c in Window.columns(("gpu", "cpu"))}
    base.update(t_start=0.0, t_end=15.0, placement="balanced", cpu_desired=cpu_desired,
                gpu_desired=1, latency_p50_ms=math.nan)  # fmt: skip
    return Window.from_dict(base)


def test_hpa_runs_from_outside_where_no_hpa_object_exists() -> None:
    sc = load_scenario(ROOT / "configs" / "scenarios" / "default.yaml")
    pol = make_policy("hpa:0.5")
    assert pol.for_backend(True) is pol and isinstance(pol, HPA)
    ext = pol.for_backend(False)
    assert isinstance(ext, ExternalHPA)
    run = ext.scenario(sc)
    assert run.controller.name == "external"  # nothing in the cluster fights it
    assert run.controller.hpa.target_cpu_utilization == 0.5
    assert ext.period_s == run.controller.hpa.sync_period_s


def test_decision_is_the_hpa_formula() -> None:
    """Two ready pods at 1.8 of 2 cores (90 %) with target 60 %: ceil(2 x 0.9 / 0.6) = 3;
    at 0.6 cores (30 %) the scale-down waits for the 300 s stabilisation window."""
    sc = load_scenario(ROOT / "configs" / "scenarios" / "default.yaml")
    ext = make_policy("hpa:0.6").for_backend(False)
    run = ext.scenario(sc)
    ext.reset(run)
    hot = FakePodLister({"cpu-1": 1.8, "cpu-2": 1.8})
    ext.backend = hot
    a = ext.tick(_w(2), 400.0)  # past the CPU initialisation period of the pods
    assert a is not None and a.pools["cpu"].replicas == 3
    assert set(hot.asked) == {run.metrics.metrics_server_resolution_s}
    ext.reset(run)
    ext.backend = FakePodLister({"cpu-1": 0.6, "cpu-2": 0.6})
    assert ext.tick(_w(2), 400.0) is None  # the first recommendation is the current count
    assert ext.tick(_w(2), 415.0) is None  # stabilisation window holds the scale-down

"""The scenario's `faults` section (kisim.core.faults): schema, random draws, SLO split."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kisim.core.config import load_scenario, override, resolved_json
from kisim.core.faults import FaultsConfig, fault_spans, random_events, split_attainment
from kisim.core.window import Window
from kisim.env.environment import DEFAULT_SCENARIO


@pytest.fixture(scope="module")
def base():  # type: ignore[no-untyped-def]
    return load_scenario(DEFAULT_SCENARIO)


def test_backoff_sequence() -> None:
    """kubelet: restart 1 at once, then 10 s doubling to the 300 s cap (also ImagePullBackOff)."""
    cfg = FaultsConfig()
    assert [cfg.backoff(n) for n in range(1, 10)] == [0, 10, 20, 40, 80, 160, 300, 300, 300]


def test_random_events_count_is_poisson(base) -> None:  # type: ignore[no-untyped-def]
    """Events per episode are Poisson with mean per_hour x duration / 1 h: over 400 seeds the
    mean lies within 4 standard errors (sqrt(mean / 400)) of it, and the draws are a pure
    function of the seed, at uniform times inside the run."""
    sc = override(base, "t", faults={"random": {"per_hour": 30.0}}, duration_s=600.0)
    counts = [len(random_events(sc, s)) for s in range(400)]
    mean = 30.0 * 600.0 / 3600.0
    assert abs(np.mean(counts) - mean) < 4 * math.sqrt(mean / 400)
    assert random_events(sc, 5) == random_events(sc, 5)
    assert all(0 <= e.at_s < 600 for s in range(50) for e in random_events(sc, s))
    assert random_events(base, 5) == []  # none configured


def test_random_faults_dump_and_reload(base) -> None:  # type: ignore[no-untyped-def]
    """An active section is part of the resolved config and validates again from it."""
    sc = override(base, "t", faults={"random": {"per_hour": 3.0}, "oom_kill": True})
    assert '"faults"' in resolved_json(sc)
    again = override(sc, "again")
    assert again.faults == sc.faults


def _w(t0: float, served: int, errors: int, slow: int) -> Window:
    d = dict(t_start=t0, t_end=t0 + 10.0, load_level=1.0, offered=served + errors,
             served=served, errors=errors, throughput_rps=served / 10, latency_mean_ms=1.0,
             latency_p50_ms=1.0, latency_p95_ms=1.0, latency_p99_ms=1.0, queue_wait_ms=0.0,
             slo_violations=slow + errors,
             cpu_util=0.1, mem_util=0.1, gpu_util=0.1, gpu_desired=1, gpu_ready=1, gpu_pending=0,
             cpu_desired=1, cpu_ready=1, cpu_pending=0, gpu_replica_s=10.0, cpu_replica_s=10.0,
             pending_pod_s=0.0, queue_length=0, mean_batch_size=1.0,
             placement="balanced")  # fmt: skip
    return Window.from_dict(d)


def test_split_attainment_during_and_outside() -> None:
    """Windows overlapping a fault span count as 'during'; errors are misses."""
    spans = fault_spans(FaultsConfig.model_validate(
        {"events": [{"kind": "prometheus_down", "at_s": 15, "duration_s": 10}]}).events, 40.0)
    ws = [_w(0, 100, 0, 0), _w(10, 80, 10, 10), _w(20, 50, 50, 0), _w(30, 90, 0, 9)]
    out = split_attainment(ws, spans, 100.0)
    assert out["slo_attainment_fault"] == pytest.approx((70 + 50) / (90 + 100))
    assert out["slo_attainment_nofault"] == pytest.approx((100 + 81) / (100 + 90))
    assert out["fault_s"] == 10.0
    assert math.isnan(split_attainment(ws, [], 100.0)["slo_attainment_fault"])

"""The naive SimPy reference models the same queueing as the twin (a fair speed comparison).

Both are stochastic with unrelated random streams, so they are compared as
distributions: each runs R seeds of a scenario, and for every statistic (throughput,
mean latency, mean queue wait, mean batch size) the difference of the two means must
lie within K standard errors, SE = sqrt(s_twin^2 / R + s_naive^2 / R) from the
run-to-run spread. With R = 5 that is a t statistic with ~8 degrees of freedom:
|t| > 4 happens by chance about 0.4 % of the time for a correct model. Seeds are
fixed, so the test is deterministic; the same runs also check that the resulting
tolerance is tight (a few per cent at most), so agreement is not vacuous.
"""

from __future__ import annotations

import math
import statistics

import pytest

from bench.naive_simpy import run_naive
from bench.twin_bench import bench_scenario
from kisim.core.config import Scenario, override
from kisim.env.episode import run_windows, twin_backend

R = 5
K = 4.0
DURATION_S = 120.0

# statistic -> the largest tolerance (K x SE, relative to the mean) that still counts as
# a sharp test; measured tolerances are well below these.
MAX_REL_TOL = {"throughput_rps": 0.02, "mean_ms": 0.03, "mean_wait_ms": 0.12, "mean_batch": 0.03}


def _twin(sc: Scenario, seed: int) -> dict[str, float]:
    s = run_windows(twin_backend(), sc, seed).summary
    assert s["errors"] == 0
    return {"throughput_rps": s["served"] / sc.duration_s, "mean_ms": s["mean_ms"],
            "mean_wait_ms": s["mean_wait_ms"], "mean_batch": s["mean_batch_size"]}  # fmt: skip


def _naive(sc: Scenario, seed: int) -> dict[str, float]:
    r = run_naive(sc, seed)
    assert r.errors == 0
    return {"throughput_rps": r.throughput_rps, "mean_ms": r.mean_ms,
            "mean_wait_ms": r.mean_wait_ms, "mean_batch": r.mean_batch_size}  # fmt: skip


def benchmark_case() -> Scenario:
    """The benchmark scenario itself (constant 100 users, mixed pools, batching), shorter."""
    return override(bench_scenario(), "test", duration_s=DURATION_S)


def busy_case() -> Scenario:
    """More contention: open-loop Poisson load, most of it to two CPU replicas with two
    instances each (core sharing), two instances on the one GPU (time-slicing penalty),
    larger batches."""
    return override(
        bench_scenario(),
        "test",
        **{
            "duration_s": DURATION_S,
            "traffic.mode": "open",
            "traffic.pattern": {"name": "constant", "params": {"level": 200}},
            "routing.placement": "prefer-cpu",
            "pools.cpu.replicas": 2,
            "pools.cpu.instances": 2,
            "pools.gpu.instances": 2,
            "pools.cpu.batching.max_queue_delay_us": 3000,
        },
    )


@pytest.mark.slow
@pytest.mark.parametrize("case", [benchmark_case, busy_case], ids=["benchmark", "busy"])
def test_naive_reference_matches_twin(case) -> None:  # type: ignore[no-untyped-def]
    sc = case()
    twin = [_twin(sc, seed) for seed in range(R)]
    naive = [_naive(sc, seed) for seed in range(R)]
    report = []
    failures = []
    for key, max_rel in MAX_REL_TOL.items():
        a, b = [x[key] for x in twin], [x[key] for x in naive]
        ma, mb = statistics.fmean(a), statistics.fmean(b)
        se = math.sqrt(statistics.variance(a) / R + statistics.variance(b) / R)
        tol = K * se
        line = (f"{key}: twin {ma:.4g}, naive {mb:.4g}, diff {mb - ma:+.3g}, "
                f"tolerance {tol:.3g} ({tol / abs(ma):.2%})")  # fmt: skip
        report.append(line)
        if abs(mb - ma) > tol:
            failures.append("disagree: " + line)
        if tol > max_rel * abs(ma):
            failures.append(f"tolerance too loose to mean anything (> {max_rel:.0%}): " + line)
    assert not failures, "\n".join(failures + ["--"] + report)

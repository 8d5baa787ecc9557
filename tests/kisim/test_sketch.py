"""`LatencySketch`: every quantile within ALPHA of numpy's linear quantile, exact merges,
exact sums, and the compiled bucket function agreeing with the Python one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kisim.core.sketch import (
    ALPHA,
    MAX_S,
    MIN_S,
    N_BUCKETS,
    REPRESENTATIVE_S,
    LatencySketch,
    bucket_of,
)
from twin import kernel as K

QS = (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)
TOL = ALPHA * (1 + 1e-9)  # the guarantee, plus float rounding of the representatives


def _samples(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.lognormal(math.log(0.03), 1.0, 20_000),  # heavy-ish tail
        rng.exponential(0.005, 5_000) + 0.002,  # M/M/1-like sojourn
        rng.uniform(1e-5, 50.0, 3_000),  # several decades
        np.full(7, 0.0123),  # one value
        rng.lognormal(math.log(0.01), 0.01, 11),  # a few close values (interpolation)
    ]


@pytest.mark.parametrize("case", range(5))
def test_quantiles_within_the_stated_relative_error(case: int) -> None:
    x = _samples(np.random.default_rng(case))[case]
    sk = LatencySketch.of(x)
    got = np.array(sk.quantiles(QS))
    want = np.percentile(x, [q * 100 for q in QS])
    rel = np.abs(got - want) / want
    assert rel.max() <= TOL, (rel.max(), QS[int(rel.argmax())])
    assert len(sk) == x.size
    assert sk.mean() == pytest.approx(x.mean(), rel=1e-12)


def test_the_bound_is_tight_not_loose() -> None:
    """Values at a bucket's edges are reported ALPHA off: the error is the stated one (a
    sketch with wider buckets would fail the test above)."""
    rep = REPRESENTATIVE_S[500]
    upper = rep / (1 - ALPHA)  # the bucket's upper edge
    lower = rep / (1 + ALPHA) * (1 + 1e-9)  # just above its lower edge
    for v in (lower, upper):
        (q,) = LatencySketch.of([v]).quantiles([0.5])
        assert abs(q - v) / v == pytest.approx(ALPHA, rel=1e-6)


def test_merge_equals_sketch_of_concatenation() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.exponential(0.01, 1000), rng.exponential(0.05, 3000)
    m = LatencySketch.of(a)
    m.merge(LatencySketch.of(b))
    whole = LatencySketch.of(np.concatenate([a, b]))
    assert np.array_equal(m.counts, whole.counts)
    assert m.quantiles(QS) == whole.quantiles(QS)


def test_zero_and_out_of_range_values() -> None:
    sk = LatencySketch.of([0.0, 0.0, MIN_S / 2, 2 * MAX_S])
    assert sk.counts[0] == 3 and sk.counts[N_BUCKETS - 1] == 1
    assert sk.quantiles([0.5]) == [0.0]
    assert math.isnan(LatencySketch().quantiles([0.5])[0]) and math.isnan(LatencySketch().mean())


def test_compiled_bucket_agrees_with_python() -> None:
    rng = np.random.default_rng(5)
    xs = np.concatenate([[0.0, MIN_S, MIN_S * 1.0001, 1.0, MAX_S, 10 * MAX_S],
                         10.0 ** rng.uniform(-7, 5, 2000)])  # fmt: skip
    assert [K._bucket(x) for x in xs] == [bucket_of(float(x)) for x in xs]
    by_python = np.bincount([bucket_of(float(x)) for x in xs], minlength=N_BUCKETS)
    assert np.array_equal(LatencySketch.of(xs).counts, by_python)


def test_histogram_counts_every_value() -> None:
    x = np.random.default_rng(1).lognormal(math.log(0.02), 0.5, 4000)
    edges = np.geomspace(1e-4, 100.0, 241)
    h = LatencySketch.of(x).histogram(edges)
    exact, _ = np.histogram(x, bins=edges)
    assert h.sum() == exact.sum() == x.size
    # only values within ALPHA of a bin edge can change bins
    near = sum(int(np.count_nonzero(np.abs(x / e - 1) <= ALPHA)) for e in edges)
    assert np.abs(np.cumsum(h) - np.cumsum(exact)).max() <= near

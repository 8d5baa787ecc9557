"""`LatencyRecords` and the figures read from its sorted copy are numpy's, value for value:
`linear_percentiles` against ``np.percentile``, `sorted_histogram` against ``np.histogram``,
and `percentiles_ms` / `latency_histogram` on records against the same on a plain array."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from kisim.core.records import LatencyRecords, linear_percentiles, sorted_histogram
from kisim.core.summary import LATENCY_BINS_MS, latency_histogram
from kisim.core.window import percentiles_ms

PERCENTS = (0, 1, 5, 25, 50, 75, 90, 95, 99, 99.9, 100)


def _samples() -> list[np.ndarray]:
    """Sizes 1..~3,000; continuous, tied (few distinct values) and exactly-representable data."""
    rng = np.random.default_rng(20261206)
    out = [np.array([0.0125]), np.array([0.3, 0.1])]
    for n in (*range(3, 40), 97, 100, 101, 1000, 1451, 2999):
        out.append(rng.lognormal(-3.0, 0.6, n))
        out.append(rng.integers(1, 6, n) * 0.01)  # many ties
        out.append(rng.uniform(0.0, 1.0, n))
    return out


@pytest.mark.parametrize("percents", [PERCENTS, (50, 95, 99)])
def test_linear_percentiles_are_numpys(percents: tuple[float, ...]) -> None:
    for a in _samples():
        want = np.percentile(a, list(percents))
        got = linear_percentiles(np.sort(a), percents)
        assert [float(x) for x in want] == got, len(a)


def test_sorted_histogram_is_numpys() -> None:
    edges = LATENCY_BINS_MS
    for a in _samples():
        ms = a * 1000.0
        want, _ = np.histogram(ms, bins=edges)
        assert np.array_equal(sorted_histogram(np.sort(ms), edges), want), len(a)
    # values on edges, below the first and above the last (the last bin is closed)
    ms = np.concatenate([edges, edges[:-1] * 0.5, [edges[-1] * 2, edges[-1]]])
    want, _ = np.histogram(ms, bins=edges)
    assert np.array_equal(sorted_histogram(np.sort(ms), edges), want)


def test_records_give_the_plain_arrays_figures() -> None:
    for a in _samples():
        calls: list[int] = []
        rec = LatencyRecords.of(a, lambda a=a, calls=calls: calls.append(1) or np.sort(a))
        assert percentiles_ms(rec) == percentiles_ms(a.copy())
        assert latency_histogram(rec) == latency_histogram(a.copy())
        assert calls == [1]  # the sorted copy is built once, for both


def test_derived_arrays_have_no_sorted_copy() -> None:
    """A slice, arithmetic or an unpickled copy holds other values (or no sorter): it never
    reuses the producer's sorted copy, and its figures are the plain array's."""
    a = np.array([0.5, 0.1, 0.3, 0.2])
    rec = LatencyRecords.of(a, lambda: np.array([-1.0]))  # a wrong sorter, to be noticed
    part = rec[1:3]
    assert isinstance(part, LatencyRecords) and part.presorted() is None
    assert (rec * 2.0).presorted() is None
    assert percentiles_ms(part) == percentiles_ms(np.array([0.1, 0.3]))
    back = pickle.loads(pickle.dumps(rec))
    assert back.tolist() == a.tolist() and back.presorted() is None
    assert rec.presorted().tolist() == [-1.0]  # the producer's own copy, as given

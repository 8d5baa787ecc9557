"""`LatencyRecords` and the figures read from its sorted parts are numpy's, value for value:
`parts_percentiles` against ``np.percentile``, `parts_histogram` against ``np.histogram``,
and `percentiles_ms` / `latency_histogram` on records against the same on a plain array."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from kisim.core.records import LatencyRecords, parts_histogram, parts_percentiles
from kisim.core.summary import LATENCY_BINS_MS, latency_histogram
from kisim.core.window import percentiles_ms

PERCENTS = (0, 1, 5, 25, 50, 75, 90, 95, 99, 99.9, 100)


def _samples() -> list[np.ndarray]:
    """Sizes 1..~3,000; continuous, tied (few distinct values) and uniform data."""
    rng = np.random.default_rng(20261206)
    out = [np.array([0.0125]), np.array([0.3, 0.1])]
    for n in (*range(3, 40), 97, 100, 101, 1000, 1451, 2999):
        out.append(rng.lognormal(-3.0, 0.6, n))
        out.append(rng.integers(1, 6, n) * 0.01)  # many ties
        out.append(rng.uniform(0.0, 1.0, n))
    return out


def _split(a: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """`a` cut into k consecutive parts of random sizes (some empty), each sorted."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, len(a) + 1, k - 1))
    return [np.sort(p) for p in np.split(a, cuts)]


@pytest.mark.parametrize("k", [1, 2, 7, 20])
def test_parts_percentiles_are_numpys(k: int) -> None:
    for i, a in enumerate(_samples()):
        parts = _split(a, k, i)
        for scale in (1.0, 1000.0):
            want = np.percentile(a * scale, list(PERCENTS))
            got = parts_percentiles(parts, PERCENTS, scale)
            assert [float(x) for x in want] == got, (len(a), k, scale)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_parts_histogram_is_numpys(k: int) -> None:
    edges = LATENCY_BINS_MS
    for i, a in enumerate(_samples()):
        want, _ = np.histogram(a * 1000.0, bins=edges)
        got = parts_histogram(_split(a, k, i), edges, 1000.0)
        assert np.array_equal(got, want), (len(a), k)
    # values on edges, below the first and above the last (the last bin is closed)
    ms = np.concatenate([edges, edges[:-1] * 0.5, [edges[-1] * 2, edges[-1]]])
    want, _ = np.histogram(ms, bins=edges)
    assert np.array_equal(parts_histogram(_split(ms, 3, 0), edges), want)


def test_records_give_the_plain_arrays_figures() -> None:
    for i, a in enumerate(_samples()):
        rec = LatencyRecords.of(a, _split(a, 20, i))
        assert percentiles_ms(rec) == percentiles_ms(a.copy())
        assert latency_histogram(rec) == latency_histogram(a.copy())


def test_derived_arrays_have_no_parts() -> None:
    """A slice, arithmetic or an unpickled copy holds other values (or none): it never reuses
    the producer's parts, and its figures are the plain array's."""
    a = np.array([0.5, 0.1, 0.3, 0.2])
    rec = LatencyRecords.of(a, [np.array([9.0])])  # wrong parts, to be noticed
    part = rec[1:3]
    assert isinstance(part, LatencyRecords) and part.sorted_parts() is None
    assert (rec * 2.0).sorted_parts() is None
    assert percentiles_ms(part) == percentiles_ms(np.array([0.1, 0.3]))
    back = pickle.loads(pickle.dumps(rec))
    assert back.tolist() == a.tolist() and back.sorted_parts() is None
    assert percentiles_ms(rec).p50 == 9000.0  # the producer's parts, as given

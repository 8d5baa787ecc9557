"""Hand-computed PromQL cases for twin.scrape (Prometheus 3.x extrapolatedRate semantics).

Notation in comments: dS/dE = duration from range start to first sample / last sample to
range end, I = sampled interval (last - first), avg = I/(n-1), thr = 1.1*avg,
factor = (I + dS + dE) / I, increase = (last - first + resets) * factor, rate = increase/range.
"""

from __future__ import annotations

import pytest

from twin.scrape import SeriesStore, scrape_times

K = 'nv_inference_count{pod="a"}'


def _store(points: list[tuple[float, float]], retention_s: float = 3600.0) -> SeriesStore:
    st = SeriesStore(retention_s)
    for t, v in points:
        st.add(t, K, v)
    return st


def test_linear_counter_gives_exact_slope() -> None:
    # v = 2t every 15 s. rate(x[60s]) at 300: window (240,300] -> t=255..300 (4 samples).
    # delta = 600-510 = 90; dS = 15 < thr 16.5; zero point 45*510/90 = 255 > 15; dE = 0
    # factor = (45+15)/45 = 4/3 -> increase 120, rate 120/60 = 2.0
    st = _store([(t, 2.0 * t) for t in range(0, 301, 15)])
    assert st.rate(K, 300, 60) == pytest.approx(2.0, rel=1e-12)
    assert st.increase(K, 300, 60) == pytest.approx(120.0, rel=1e-12)
    # off-grid evaluation at 290: (230,290] -> 240..285, dS = 10, dE = 5, I = 45
    # delta 90, factor (45+10+5)/45 = 4/3 -> rate 2.0 again
    assert st.rate(K, 290, 60) == pytest.approx(2.0, rel=1e-12)
    for at, r in [(300, 60), (290, 45), (123.4, 120)]:
        assert st.increase(K, at, r) == pytest.approx(st.rate(K, at, r) * r, rel=1e-12)


def test_fewer_than_two_samples_is_empty() -> None:
    st = _store([(0, 1.0), (15, 2.0), (30, 3.0)])
    assert st.rate(K, 30, 15) is None  # (15,30] holds only t=30
    assert st.increase(K, 30, 10) is None
    assert st.rate(K, 100, 60) is None  # (40,100] holds nothing
    assert st.rate("missing", 30, 60) is None
    assert st.avg_over_time("missing", 30, 60) is None


def test_left_open_range_boundary() -> None:
    # samples (0,100) (15,110) (30,140); rate(x[30s]) at 30: (0,30] -> t=15,30 only.
    # delta 30, dS = 15 < thr 16.5, zero point 15*110/30 = 55 > 15, dE = 0
    # factor (15+15)/15 = 2 -> increase 60, rate 2.0. (A closed range would give 40/30.)
    st = _store([(0, 100.0), (15, 110.0), (30, 140.0)])
    assert st.increase(K, 30, 30) == pytest.approx(60.0)
    assert st.rate(K, 30, 30) == pytest.approx(2.0)
    # avg_over_time over (15,30] sees only t=30 -> 140; over (0,30] -> (110+140)/2 = 125
    assert st.avg_over_time(K, 30, 15) == pytest.approx(140.0)
    assert st.avg_over_time(K, 30, 30) == pytest.approx(125.0)


def test_counter_reset_is_corrected() -> None:
    # 10,20,30,5,15 at 0..60; rate(x[60s]) at 60: (0,60] -> 20,30,5,15.
    # delta 15-20 = -5, reset 30->5 adds 30 -> 25; dS = 15 < 16.5; zero point 45*20/25 = 36
    # > 15; dE = 0; factor (45+15)/45 = 4/3 -> increase 100/3, rate 100/3/60 = 5/9
    st = _store([(0, 10.0), (15, 20.0), (30, 30.0), (45, 5.0), (60, 15.0)])
    assert st.increase(K, 60, 60) == pytest.approx(100.0 / 3.0)
    assert st.rate(K, 60, 60) == pytest.approx(5.0 / 9.0)


def test_series_starting_inside_window() -> None:
    # 1000,1030,1060,1090 at t=100..145; rate(x[120s]) at 150: (30,150] holds all 4.
    # delta 90; dS = 70 >= 16.5 -> 7.5; zero point 45*1000/90 = 500 > 7.5; dE = 5 < 16.5
    # factor (45+7.5+5)/45 = 57.5/45 -> increase 115, rate 115/120
    st = _store([(100, 1000.0), (115, 1030.0), (130, 1060.0), (145, 1090.0)])
    assert st.increase(K, 150, 120) == pytest.approx(115.0)
    assert st.rate(K, 150, 120) == pytest.approx(115.0 / 120.0)


def test_series_ending_early() -> None:
    # 1000 + 2t at t=0..60; rate(x[120s]) at 120: (0,120] -> t=15..60 = 1030..1120.
    # delta 90; dS = 15 < 16.5; dE = 60 >= 16.5 -> 7.5
    # factor (45+15+7.5)/45 = 1.5 -> increase 135, rate 135/120 = 1.125
    st = _store([(t, 1000.0 + 2 * t) for t in range(0, 61, 15)])
    assert st.increase(K, 120, 120) == pytest.approx(135.0)
    assert st.rate(K, 120, 120) == pytest.approx(1.125)


def test_counter_not_extrapolated_below_zero() -> None:
    # (a) 3,18,33,48 at 15..60, x[60s] at 60: delta 45, dS = 15 < 16.5 kept,
    #     zero point 45*3/45 = 3 < 15 -> dS = 3; factor 48/45 -> increase 48, rate 0.8
    st = _store([(15, 3.0), (30, 18.0), (45, 33.0), (60, 48.0)])
    assert st.increase(K, 60, 60) == pytest.approx(48.0)
    assert st.rate(K, 60, 60) == pytest.approx(0.8)
    # (b) 5,20,35 at 30..60: dS = 30 >= 16.5 -> 7.5; zero point 30*5/30 = 5 < 7.5 -> 5
    #     factor (30+5)/30 -> increase 35, rate 35/60
    st = _store([(30, 5.0), (45, 20.0), (60, 35.0)])
    assert st.increase(K, 60, 60) == pytest.approx(35.0)
    # (c) order matters (PR #13725): 10,25,40 at 30..60: dS = 30 >= 16.5 -> 7.5 first,
    #     then zero point 30*10/30 = 10 > 7.5 keeps 7.5 -> factor 37.5/30 -> 37.5
    #     (pre-2024 servers clamped first: min(30,10) = 10 < 16.5 -> 40)
    st = _store([(30, 10.0), (45, 25.0), (60, 40.0)])
    assert st.increase(K, 60, 60) == pytest.approx(37.5)


def test_last_lookback_and_staleness() -> None:
    st = _store([(0, 1.0), (15, 2.0)])
    assert st.last(K, -1) is None
    assert st.last(K, 10) == 1.0
    assert st.last(K, 100) == 2.0
    assert st.last(K, 314.9) == 2.0  # (14.9, 314.9] contains t=15
    assert st.last(K, 315) is None  # (15, 315] is left-open: t=15 excluded
    assert st.last(K, 20, lookback_s=4) is None
    st.drop(K, at=20)  # staleness marker: the gauge vanishes at once...
    assert st.last(K, 19) == 2.0
    assert st.last(K, 25) is None
    # ...but range functions still use the real samples: (−10,20] -> 1,2, I = 15,
    # dS = 10 < 16.5, zero point 15*1/1 = 15 > 10, dE = 5: factor 30/15 -> increase 2
    assert st.increase(K, 20, 30) == pytest.approx(2.0)
    st.add(30, K, 3.0)  # a sample after the marker revives the series
    assert st.last(K, 30) == 3.0 and st.last(K, 25) is None
    with pytest.raises(ValueError):
        st.add(30, K, 4.0)
    st.drop(K)  # forget immediately
    assert K not in st.keys() and st.last(K, 30) is None


def test_keys_prefix() -> None:
    st = SeriesStore()
    for k in ["cpu{pod=b}", "cpu{pod=a}", "gpu{pod=a}"]:
        st.add(0, k, 0.0)
    assert st.keys("cpu") == ["cpu{pod=a}", "cpu{pod=b}"]
    assert len(st.keys()) == 3


def test_retention_pruning_keeps_results_inside_retention() -> None:
    # 3000 adds (> SWEEP_EVERY) of a noisy-ish counter, 120 s retention vs. unbounded.
    pts = [(15.0 * i, 7.0 * i + (i % 5)) for i in range(3000)]
    small, big = _store(pts, retention_s=120.0), _store(pts, retention_s=1e9)
    end = pts[-1][0]
    assert len(small._series[K].ts) < 1100  # pruned: retention window + < SWEEP_EVERY adds
    for at in (end, end - 7.5):
        for r in (30.0, 60.0, 90.0):
            assert small.rate(K, at, r) == big.rate(K, at, r)
            assert small.avg_over_time(K, at, r) == big.avg_over_time(K, at, r)
        assert small.last(K, at, 100.0) == big.last(K, at, 100.0)
    assert small.rate(K, 15.0 * 100, 60) is None  # long gone
    # a series that stopped being scraped is forgotten once wholly outside retention
    small.add(end + 1, "dead", 1.0)
    small.drop("dead", at=end + 2)
    for i in range(1, SeriesStore.SWEEP_EVERY + 1):
        small.add(end + 15.0 * i, K, 0.0 + i)
    assert "dead" not in small.keys()


def test_scrape_times() -> None:
    assert scrape_times(0, 60, 15) == [0, 15, 30, 45]
    assert scrape_times(7, 60, 15, offset=3) == [18, 33, 48]
    # adjacent half-open windows neither skip nor repeat an instant
    a, b = scrape_times(0, 37.5, 7.5, 0.1), scrape_times(37.5, 75, 7.5, 0.1)
    assert a + b == pytest.approx(scrape_times(0, 75, 7.5, 0.1))
    assert len(a + b) == 10 and scrape_times(5, 5, 1) == []
    # far from the origin: instants are offset + k*interval, no accumulated drift
    far = scrape_times(1e6, 1e6 + 1, 0.1)
    assert len(far) == 10 and far[0] == pytest.approx(1e6) and far[-1] == pytest.approx(1e6 + 0.9)

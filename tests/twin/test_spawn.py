"""How new closed-loop users start: Locust's spawn rate (`traffic.spawn_rate_users_s`).

Locust's dispatcher starts the users added at a shape tick in groups of
max(1, floor(rate)), one group every group/rate seconds, all of a group at once, and a
user's first request is sent on start (`between` waits after each task). Without a rate
(the default) new users start uniformly over the shape tick, as before.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from kisim.core.config import Scenario
from twin import kernel as K
from twin.backend import TwinBackend
from twin.dataplane import DataPlane


def _first_requests(dp: DataPlane, users: range) -> np.ndarray:
    """Pending first-request times of `users`, in user order (read off the event heap)."""
    n = int(dp.gi[K.HN])
    kind, who, t = dp.hk[:n], dp.hx[:n], dp.ht[:n]
    at = {int(u): float(x) for k, u, x in zip(kind, who, t, strict=True) if k == K.ARRIVE}
    return np.array([at[u] for u in users])


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        (100.0, [0.0] * 24),  # Locust's 100/s: up to 100 users in one group, at the tick
        (2.5, [0.0, 0.0, 0.8, 0.8, 1.6]),  # groups of 2, every 2 / 2.5 = 0.8 s
        (4.0, [0.0] * 4),  # one group of 4: at once
        (0.5, [0.0, 2.0, 4.0]),  # groups of 1, every 2 s
        (150.0, [0.0] * 150 + [1.0] * 10),  # 160 users: 150 now, the rest 1 s later
    ],
)
def test_spawn_rate_starts_users_in_locust_groups(
    make_scenario: Callable[..., Scenario], rate: float, expected: list[float]
) -> None:
    sc = make_scenario(**{"traffic.spawn_rate_users_s": rate})
    dp = DataPlane(sc, seed=1)
    dp.set_users(3, 0.0, 1.0, rate)  # users 0..2 start at 0
    now = 75.0
    dp.set_users(3 + len(expected), now, 1.0, rate)
    got = _first_requests(dp, range(3, 3 + len(expected)))
    np.testing.assert_allclose(got - now, expected, rtol=0, atol=1e-12)
    # deterministic: the same call on a fresh data plane with another seed gives the same
    dp2 = DataPlane(sc, seed=2)
    dp2.set_users(3, 0.0, 1.0, rate)
    dp2.set_users(3 + len(expected), now, 1.0, rate)
    np.testing.assert_array_equal(_first_requests(dp2, range(3, 3 + len(expected))), got)


def test_no_spawn_rate_spreads_over_the_tick(make_scenario: Callable[..., Scenario]) -> None:
    """None (the default) and 0 are the former behaviour: uniform draws over the tick."""
    sc = make_scenario()
    assert sc.traffic.spawn_rate_users_s is None
    runs = []
    for rate in (None, 0.0):
        dp = DataPlane(sc, seed=7)
        dp.set_users(24, 10.0, 1.0, rate)
        runs.append(_first_requests(dp, range(24)))
    np.testing.assert_array_equal(runs[0], runs[1])
    t = runs[0] - 10.0
    assert t.min() >= 0.0 and t.max() < 1.0
    assert np.ptp(t) > 0.5  # spread over the tick, not at once


@pytest.mark.parametrize("rate", [None, 1.0, 100.0])
def test_shaper_passes_the_spawn_rate(
    make_scenario: Callable[..., Scenario], rate: float | None
) -> None:
    """Through the twin: 20 users from t = 0, think time >= 5 s, so the first 0.5 s
    holds exactly the first requests of the users started by then."""
    sc = make_scenario(**{"traffic.spawn_rate_users_s": rate,
                          "traffic.pattern": {"name": "constant", "params": {"level": 20}},
                          "traffic.wait_time_s": (5.0, 6.0)})  # fmt: skip
    be = TwinBackend()
    be.reset(sc, 3)
    offered = be.advance(0.5).offered
    if rate is None:
        assert 3 <= offered <= 17  # uniform over the 1 s tick: about 10
    elif rate == 1.0:
        assert offered == 1  # one user per second, the first at once
    else:
        assert offered == 20  # all 20 at the tick

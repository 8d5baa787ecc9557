"""Fair share across tenant queues pinned to KAI-Scheduler / Kueue semantics."""

from __future__ import annotations

import pytest

from twin.platform.fairshare import Queue, admit, fair_shares, reclaimable


def test_deserved_quota_first_then_over_quota_weight() -> None:
    """KAI: each queue gets its deserved quota (up to demand); the remainder is divided in
    proportion to overQuotaWeight, never beyond a queue's demand (KAI-Scheduler docs,
    fairness)."""
    qs = {"a": Queue(quota=4, weight=1, demand=20), "b": Queue(quota=4, weight=3, demand=20),
          "c": Queue(quota=4, weight=1, demand=2)}
    s = fair_shares(qs, 16)
    assert s["c"] == pytest.approx(2)
    assert s["a"] == pytest.approx(4 + 6 * 1 / 4) and s["b"] == pytest.approx(4 + 6 * 3 / 4)
    assert sum(s.values()) == pytest.approx(16)


def test_borrowing_and_reclaim_restore_guarantees_only() -> None:
    """Kueue: a queue may borrow what the cohort leaves unused; reclaimWithinCohort takes back
    its nominal quota from borrowers — and nothing beyond its quota (KAI discussion #1763:
    reclaim recovers the deserved quota, not the fair share)."""
    assert admit(used=8, request=2, quota=8, cohort_used=10, cohort_capacity=16)  # borrows
    assert not admit(used=8, request=2, quota=8, cohort_used=16, cohort_capacity=16)
    assert not admit(used=8, request=2, quota=8, cohort_used=10, cohort_capacity=16,
                     borrowing_limit=1)
    used = {"a": 14.0, "b": 2.0}
    quotas = {"a": 8.0, "b": 8.0}
    assert reclaimable(used, quotas, "b", 4.0) == {"a": 4.0}
    assert reclaimable(used, quotas, "b", 7.0) == {}  # 2 + 7 > 8: beyond its guarantee

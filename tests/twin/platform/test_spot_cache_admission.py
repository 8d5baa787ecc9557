"""Spot interruptions (AWS notice), the result cache (LRU) and per-user admission."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kisim.core.platform import NodePoolSpec
from twin.platform.admission import UserQueue
from twin.platform.cache import ResultCache
from twin.platform.spot import AWS_NOTICE_S, lost_work, next_interruption


def test_spot_notice_and_loss() -> None:
    """AWS gives a two-minute Spot interruption notice (EC2 user guide); work since the last
    checkpoint before the pod stops is lost, all of it without checkpoints."""
    assert AWS_NOTICE_S == 120.0 and NodePoolSpec(cpu=4, memory_gib=8).notice_s == 120.0
    # started at 0, notice at 100, 30 s grace: stops at 130
    assert lost_work(0.0, 100.0, 120.0, 30.0, None) == 130.0
    assert lost_work(0.0, 100.0, 120.0, 30.0, 60.0) == 10.0
    assert next_interruption(np.random.default_rng(0), 0.0) == math.inf
    rng = np.random.default_rng(2)
    xs = [next_interruption(rng, 2.0) for _ in range(20000)]
    # exponential, mean 1800 s: standard error 1800/sqrt(20000) = 12.7
    assert np.mean(xs) == pytest.approx(1800, abs=5 * 12.7)


def test_cache_is_lru_with_capacity() -> None:
    """A bounded LRU: the least recently used entry goes first; hits are counted."""
    c = ResultCache(2)
    c.store("a")
    c.store("b")
    assert c.lookup("a")  # a is now most recent
    c.store("c")  # evicts b
    assert not c.lookup("b") and c.lookup("a") and c.lookup("c")
    assert len(c) == 2 and c.hit_rate == pytest.approx(3 / 4)
    assert len(ResultCache(0)) == 0


def test_per_user_quota_and_queue_limit() -> None:
    """A user runs at most `per_user_running` workflows; FIFO otherwise; a full queue
    rejects."""
    q: UserQueue[str] = UserQueue(per_user_running=1, max_queued=3)
    assert q.submit(0, "a") and q.submit(0, "b") and q.submit(1, "c")
    assert not q.submit(1, "d") and q.rejected == 1
    assert [i for _, i in q.pop_startable()] == ["a", "c"]
    assert q.pop_startable() == []
    q.finished(0)
    assert [i for _, i in q.pop_startable()] == ["b"]

"""Triton's dynamic batcher: `BatchRule.decide` by hand, the kernel's copy of it, and
end-to-end runs whose batch sizes and delay timer can be worked out on paper.

End-to-end cases use deterministic arrivals every 1 ms (the first at t = 1 ms) and
deterministic service, so every batch is known in advance. Service times are
chosen so that no completion coincides with an arrival (no tie-break questions).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from kisim.core.config import BatchingConfig
from twin import kernel as K
from twin.backend import TwinBackend
from twin.batcher import BatchRule


def rule(**kw: object) -> BatchRule:
    return BatchRule(BatchingConfig(**kw))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- decide()


def test_delay_zero_sends_what_is_queued() -> None:
    r = rule(max_batch_size=8, max_queue_delay_us=0)
    assert [r.decide(n, 0.0, 0.0) for n in (1, 2, 3, 7, 8)] == [1, 2, 3, 7, 8]
    assert r.decide(20, 0.0, 0.0) == 8  # capped at max_batch_size
    assert r.decide(0, 0.0, 0.0) == 0  # nothing to send


def test_preferred_sizes_largest_formable() -> None:
    r = rule(max_batch_size=16, preferred_batch_sizes=[4, 2, 8], max_queue_delay_us=10_000)
    assert r.preferred_desc == [8, 4, 2]
    # a preferred size that can be formed goes at once, the largest one, delay or not
    assert r.decide(2, 0.0, 0.0) == 2
    assert r.decide(3, 0.0, 0.0) == 2
    assert r.decide(5, 0.0, 0.0) == 4
    assert r.decide(7, 0.0, 0.0) == 4
    assert r.decide(8, 0.0, 0.0) == 8
    # the pending batch stops growing at the largest preferred size (not max_batch_size)
    assert r.decide(15, 0.0, 0.0) == 8
    assert r.decide(40, 0.0, 0.0) == 8
    # no preferred size formable (1 queued): wait for the delay, then send it
    assert r.decide(1, 0.0, 0.0099) == 0
    assert r.decide(1, 0.0, 0.0100) == 1


def test_cap_is_max_batch_size_without_preferred_sizes() -> None:
    r = rule(max_batch_size=4, max_queue_delay_us=5_000)
    assert r.cap == 4
    # a full batch goes at once, without waiting for the delay
    assert r.decide(4, 10.0, 10.0) == 4
    assert r.decide(9, 10.0, 10.0) == 4
    # a partial batch waits
    assert r.decide(3, 10.0, 10.0) == 0


def test_delay_counts_from_the_oldest_request() -> None:
    r = rule(max_batch_size=8, max_queue_delay_us=2_000)  # 2 ms
    oldest = 1.000
    # 3 queued, the newest just arrived: what matters is when the oldest came
    assert r.decide(3, oldest, 1.0019) == 0
    assert r.decide(3, oldest, oldest + 0.002) == 3  # exactly at the deadline: send
    assert r.decide(3, oldest, 1.5) == 3
    assert r.decide(12, oldest, 1.5) == 8  # past the deadline, still capped


def test_disabled_batching_sends_one_at_a_time() -> None:
    r = rule(enabled=False, max_batch_size=8, preferred_batch_sizes=[4], max_queue_delay_us=5_000)
    assert (r.max_batch, r.cap, r.preferred_desc, r.delay_s) == (1, 1, [], 0.0)
    assert [r.decide(n, 0.0, 0.0) for n in (1, 2, 4, 50)] == [1, 1, 1, 1]


def test_queue_limit_is_carried() -> None:
    assert rule(max_queue_size=7).max_queue == 7
    assert rule().max_queue == 0


def test_kernel_decide_matches_batchrule() -> None:
    """The compiled `_decide` must be `BatchRule.decide` on array state."""
    rng = np.random.default_rng(7)
    configs = [
        dict(max_batch_size=8, max_queue_delay_us=0),
        dict(max_batch_size=8, max_queue_delay_us=2000),
        dict(max_batch_size=16, preferred_batch_sizes=[2, 4, 8], max_queue_delay_us=1000),
        dict(max_batch_size=16, preferred_batch_sizes=[4], max_queue_delay_us=0),
        dict(enabled=False, max_batch_size=8, max_queue_delay_us=500),
    ]
    for cfg in configs:
        r = rule(**cfg)
        ri = np.zeros((1, K.NRI), np.int64)
        rf = np.zeros((1, K.NRF), np.float64)
        pref = np.zeros((1, 16), np.int64)
        ri[0, K.MAXB], ri[0, K.CAP] = r.max_batch, r.cap
        ri[0, K.NPREF] = len(r.preferred_desc)
        pref[0, : len(r.preferred_desc)] = r.preferred_desc
        rf[0, K.DELAY] = r.delay_s
        for _ in range(300):
            n = int(rng.integers(1, 30))
            oldest = float(rng.uniform(0, 0.01))
            now = oldest + float(rng.choice([0.0, 0.0005, 0.001, 0.002, 0.003]))
            ri[0, K.QLEN] = n
            assert K._decide(ri, rf, pref, 0, now, oldest) == r.decide(n, oldest, now), (cfg, n)


# --------------------------------------------------------------------------- end to end


def run(queue_scenario, *, service_s: float, batching: dict, seconds: float, servers: int = 1):  # type: ignore[no-untyped-def]
    sc = queue_scenario(mean_service_s=service_s, service="deterministic", lam=1000.0,
                        arrival="deterministic", batching=batching, servers=servers)  # fmt: skip
    b = TwinBackend()
    b.reset(sc, 0)
    w = b.advance(seconds)  # `seconds` is never a completion or arrival time
    return b, w


def test_delay_timer_from_oldest_end_to_end(queue_scenario) -> None:  # type: ignore[no-untyped-def]
    """max_queue_delay 2.5 ms, service 1 ms, max batch 8, arrivals at 1, 2, 3, ... ms,
    run for 1000.2 ms.

    t=1: request 1 queues, instance free, no full batch -> timer at 1 + 2.5 = 3.5.
    t=2, 3: requests 2, 3 queue. t=3.5: send [1,2,3], busy until 4.5.
    t=4: request 4 queues (instance busy). t=4.5: free, 1 queued, oldest came at 4
    -> wait until 4 + 2.5 = 6.5 (not 4.5 + 2.5 = 7.0). t=5, 6 queue. t=6.5: send [4,5,6].
    Steady state: every batch holds 3, waits 2.5 / 1.5 / 0.5 ms, latency wait + 1 ms.
    """
    b, w = run(queue_scenario, service_s=1e-3, seconds=1.0002,
               batching={"enabled": True, "max_batch_size": 8,
                         "max_queue_delay_us": 2500})  # fmt: skip
    waits, lats = b.waits(), b.latencies()
    # batch k is sent at 3k + 0.5 ms and done at 3k + 1.5 <= 1000.2 -> k = 1..332
    assert w.served == 996 and b.batches == 332
    assert w.mean_batch_size == 3.0
    np.testing.assert_allclose(waits[:6] * 1e3, [2.5, 1.5, 0.5, 2.5, 1.5, 0.5], atol=1e-9)
    np.testing.assert_allclose(waits * 1e3, np.tile([2.5, 1.5, 0.5], 332), atol=1e-9)
    np.testing.assert_allclose(lats - waits, 1e-3, atol=1e-12)
    assert w.queue_wait_ms == pytest.approx(1.5, abs=1e-9)
    assert w.latency_mean_ms == pytest.approx(2.5, abs=1e-9)


def test_preferred_size_sent_without_waiting_end_to_end(queue_scenario) -> None:  # type: ignore[no-untyped-def]
    """preferred [4], max 8, delay 100 ms, service 0.5 ms: the 4th arrival completes a
    preferred batch, which goes at once (at 4, 8, 12, ... ms); the 100 ms timer never
    decides anything. Waits 3 / 2 / 1 / 0 ms."""
    b, w = run(queue_scenario, service_s=0.5e-3, seconds=1.0002,
               batching={"enabled": True, "max_batch_size": 8, "preferred_batch_sizes": [4],
                         "max_queue_delay_us": 100_000})  # fmt: skip
    # sent at 4k ms, done at 4k + 0.5 <= 1000.2 -> k = 1..249
    assert b.batches == 249 and w.served == 996
    assert w.mean_batch_size == 4.0
    np.testing.assert_allclose(b.waits() * 1e3, np.tile([3.0, 2.0, 1.0, 0.0], 249), atol=1e-9)


def test_delay_zero_sends_whatever_is_queued_end_to_end(queue_scenario) -> None:  # type: ignore[no-untyped-def]
    """Delay 0, service s = 1 + sqrt(2) ms (never a multiple of the 1 ms arrival gap).

    Request 1 goes alone at t = 1; after that the instance is never idle (s > 1 ms)
    and each completion sends everything that arrived during the last execution:
    2 or 3 requests. In the long run a batch of average size s / 1 ms leaves every s,
    and a request waits for the next completion: uniform over one execution (the
    phase 0.414..k mod 1 is equidistributed), so the mean wait is s / 2.
    Boundary effects: one partial batch at each end -> O(1 / batches).
    """
    s = (1 + math.sqrt(2)) * 1e-3
    b, w = run(queue_scenario, service_s=s, seconds=20.0002,
               batching={"enabled": True, "max_batch_size": 8,
                         "max_queue_delay_us": 0})  # fmt: skip
    nb = b.batches  # ~ 20 s / s = 8284
    assert nb == math.floor((20.0002 - 1e-3) / s)  # completions at 1 ms + k s <= 20 s
    sizes_ok = (b.batch_items - 1) / (nb - 1)  # without the first, single-request batch
    assert sizes_ok == pytest.approx(s / 1e-3, abs=3 / nb)
    waits = b.waits()
    assert waits[0] == 0.0
    assert waits.min() >= 0.0 and waits.max() <= s + 1e-12
    assert waits.mean() == pytest.approx(s / 2, rel=5e-3)
    np.testing.assert_allclose(b.latencies() - waits, s, atol=1e-12)


@pytest.mark.parametrize(("enabled", "size"), [(True, 4), (False, 1)])
def test_cap_and_disabled_end_to_end(queue_scenario, enabled: bool, size: int) -> None:  # type: ignore[no-untyped-def]
    """Overload: arrivals every 1 ms, service 10.5 ms, max batch 4, delay 0.

    Request 1 goes alone at 1 ms (done 11.5); from then on the queue never empties,
    so every batch is full: 4 with batching, 1 without. Completions at
    1 + 10.5 k ms <= 1000.2 -> k = 1..95: 1 + 94 * size requests served.
    The queue ends 600-900 long, past the data plane's initial queue buffer (256):
    buffer growth mid-run is exercised too (an off-by-one there once hung this run)."""
    b, w = run(queue_scenario, service_s=10.5e-3, seconds=1.0002,
               batching={"enabled": enabled, "max_batch_size": 4,
                         "max_queue_delay_us": 0})  # fmt: skip
    assert b.batches == 95
    assert w.served == b.batch_items == 1 + 94 * size
    assert w.offered == 1000
    # queued at the end: all but request 1 and the 95 batches sent after it (the last
    # of them, sent at 1 + 10.5 * 95 = 998.5 ms, is still executing)
    assert w.queue_length == 1000 - (1 + 95 * size)
    # FIFO, batch by batch: batch j >= 1 is sent at 1 + 10.5 j ms and holds requests
    # 2 + (j-1) size .. 1 + j size (request i arrives at i ms)
    served = np.arange(1, 2 + 94 * size)
    batch = np.where(served == 1, 0, (served - 2) // size + 1)
    expected_ms = np.where(batch == 0, 1.0, 1.0 + 10.5 * batch) - served
    np.testing.assert_allclose(b.waits() * 1e3, expected_ms, atol=1e-9)


def test_instances_execute_concurrently_end_to_end(queue_scenario) -> None:  # type: ignore[no-untyped-def]
    """Two instances, service 1.5 ms, batching off, arrivals every 1 ms: nobody waits
    (each request finds an instance free: the previous-but-one finished 0.5 ms ago)."""
    b, w = run(queue_scenario, service_s=1.5e-3, seconds=1.0002, servers=2,
               batching={"enabled": False})  # fmt: skip
    assert w.served == 998  # request k (at k ms) is done at k + 1.5 <= 1000.2 ms
    assert b.waits().max() == 0.0
    np.testing.assert_allclose(b.latencies(), 1.5e-3, atol=1e-12)

"""Triton's dynamic batcher decision, as one pure function.

Mirrors `DynamicBatchScheduler::GetDynamicBatch` (triton-inference-server/core,
src/dynamic_batch_scheduler.cc): when a model instance is free, the pending batch
grows in arrival order up to the largest preferred size (or `max_batch_size` when
none is set) and is sent at once when it gets there; otherwise the largest
preferred size that can be formed is sent; otherwise the batcher waits until the
*oldest* queued request has waited `max_queue_delay` and then sends everything
pending (up to `max_batch_size`). With a delay of 0 it sends whatever is queued.
Batches are formed only when an instance is free (Triton's rate limiter waits for
a free payload slot before it forms the next batch).
"""

from __future__ import annotations

from kisim.core.config import BatchingConfig


class BatchRule:
    """Precomputed batching parameters of one replica."""

    __slots__ = ("enabled", "max_batch", "cap", "preferred_desc", "delay_s", "max_queue")

    def __init__(self, cfg: BatchingConfig) -> None:
        self.enabled = cfg.enabled
        self.max_batch = cfg.max_batch_size if cfg.enabled else 1
        pref = sorted(set(cfg.preferred_batch_sizes), reverse=True) if cfg.enabled else []
        self.preferred_desc = pref
        self.cap = pref[0] if pref else self.max_batch
        self.delay_s = cfg.max_queue_delay_us * 1e-6 if cfg.enabled else 0.0
        self.max_queue = cfg.max_queue_size

    def decide(self, queued: int, oldest_arrival: float, now: float) -> int:
        """Batch size to send now (0: wait until `oldest_arrival + delay_s`)."""
        if queued >= self.cap:
            return self.cap
        for p in self.preferred_desc:
            if p <= queued:
                return p
        if self.delay_s == 0.0 or oldest_arrival + self.delay_s <= now:
            return queued if queued < self.max_batch else self.max_batch
        return 0

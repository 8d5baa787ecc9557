"""Queue-based admission of workflows with per-user quotas.

A tenant's submissions wait in its queue; a workflow starts when its user runs fewer than
``per_user_running`` workflows (per-user concurrency quota, as Argo's
``parallelism``/semaphores or a coordinator's per-user limit), first come first served
within the tenant (Kueue ``StrictFIFO``); a submission that finds ``max_queued`` workflows
already waiting is rejected (load shedding at the coordinator: HTTP 429).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class UserQueue(Generic[T]):
    """One tenant's workflow queue."""

    per_user_running: int
    max_queued: int
    waiting: deque[tuple[int, T]] = field(default_factory=deque)
    running: dict[int, int] = field(default_factory=dict)
    rejected: int = 0

    def submit(self, user: int, item: T) -> bool:
        """Queue `item` for `user`; False (rejected) when the queue is full."""
        if len(self.waiting) >= self.max_queued:
            self.rejected += 1
            return False
        self.waiting.append((user, item))
        return True

    def pop_startable(self) -> list[tuple[int, T]]:
        """The waiting items whose users are under quota, in FIFO order; they count as
        running from now."""
        out: list[tuple[int, T]] = []
        keep: deque[tuple[int, T]] = deque()
        for user, item in self.waiting:
            if self.running.get(user, 0) < self.per_user_running:
                self.running[user] = self.running.get(user, 0) + 1
                out.append((user, item))
            else:
                keep.append((user, item))
        self.waiting = keep
        return out

    def finished(self, user: int) -> None:
        self.running[user] -= 1

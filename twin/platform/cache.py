"""Result cache of intermediate workflow outputs: LRU with a capacity, counting hits.

A step marked ``cacheable`` whose (input, step) result is still cached completes at once
(as Argo's ``memoize`` with a ConfigMap cache does: argo-workflows docs, "Step Level
Memoization"; Argo keys on a user expression, the twin on the input and the step). Argo's
ConfigMap cache has no capacity of its own (1 MB ConfigMap limit); the twin evicts the
least recently used entry beyond ``capacity``, as a bounded store (e.g. Redis
``allkeys-lru``) would.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class ResultCache:
    """LRU cache of step results with a hit rate."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._d: OrderedDict[Hashable, None] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def lookup(self, key: Hashable) -> bool:
        """True on a hit (the entry becomes most recently used)."""
        if key in self._d:
            self._d.move_to_end(key)
            self.hits += 1
            return True
        self.misses += 1
        return False

    def store(self, key: Hashable) -> None:
        if self.capacity <= 0:
            return
        self._d[key] = None
        self._d.move_to_end(key)
        while len(self._d) > self.capacity:
            self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)

    @property
    def hit_rate(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else float("nan")

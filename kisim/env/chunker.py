"""Advancing a backend in pieces aligned to several grids of window edges, and merging them.

`KisimEnv` advances the backend once per agent step, but the evaluation harness also wants
the scenario's ``window_s`` timeline rows and an inner controller (the Knative-style KPA)
its own tick Windows: `Chunker` advances to the nearest edge of any grid, hands each grid its
closed windows, and merges the pieces of a step back into the step's Window (counts summed,
percentiles recomputed from the requests, or from the backend's sketches on large runs).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from kisim.core.backend import Backend
from kisim.core.sketch import LatencySketch
from kisim.core.window import Window, percentiles_ms

OnClose = Callable[[Window], None]
EPS = 1e-9
"""Seconds under which two times are the same edge."""


class Grid:
    """One grid of window edges (a period) and the pieces of its open window."""

    __slots__ = ("period", "next_edge", "parts", "first", "on_close", "done")

    def __init__(self, period: float, on_close: OnClose | None) -> None:
        self.period, self.next_edge, self.on_close = period, period, on_close
        self.parts: list[Window] = []
        self.first = 0  # requests completed before this grid's current window
        self.done: list[Window] = []


class Chunker:
    """Advances a backend in pieces aligned to the step and to every grid; merges them.

    A grid with `on_close` hands each of its windows to it (an inner controller's tick);
    one without collects them for `take` (the timeline).
    """

    def __init__(self, backend: Backend, grids: list[tuple[float, OnClose | None]]) -> None:
        self.b = backend
        self.grids = [Grid(p, cb) for p, cb in grids]
        self.served_total = 0
        # a backend that streams latencies into a sketch (the twin on large runs): copies of
        # its running sketches where a merged window starts, by requests served before
        self._snaps: dict[int, tuple[LatencySketch, LatencySketch]] = {}
        self._step_first = 0
        # asked once, right after reset (an exact backend's records are empty then: cheap)
        lat_fn = getattr(backend, "latencies", None)
        self._sketched = lat_fn is not None and isinstance(lat_fn(), LatencySketch)

    def _snapshot(self) -> None:
        if not self._sketched:
            return
        lat, wait = self.b.latencies(), self.b.waits()
        if isinstance(lat, LatencySketch) and isinstance(wait, LatencySketch):
            if self.served_total not in self._snaps:
                self._snaps[self.served_total] = (lat.copy(), wait.copy())
            keep = min([g.first for g in self.grids] + [self._step_first])
            for k in [k for k in self._snaps if k < keep]:
                del self._snaps[k]

    def advance(self, dt: float) -> Window:
        b = self.b
        t_end = b.now + dt
        step: list[Window] = []
        step_first = self._step_first = self.served_total
        self._snapshot()
        while b.now < t_end - EPS:
            edge = t_end
            for g in self.grids:
                if g.next_edge < edge:
                    edge = g.next_edge
            w = b.advance(edge - b.now)
            step.append(w)
            self.served_total += w.served
            for g in self.grids:
                g.parts.append(w)
                if w.t_end >= g.next_edge - EPS:
                    self._close(g)
        return self._merge(step, step_first)

    def take(self, i: int, final: bool) -> list[Window]:
        g = self.grids[i]
        if final and g.parts:
            self._close(g)
        out, g.done = g.done, []
        return out

    def _close(self, g: Grid) -> None:
        w = self._merge(g.parts, g.first)
        g.first = self.served_total
        self._snapshot()
        g.parts = []
        while g.next_edge <= self.b.now + EPS:
            g.next_edge += g.period
        if g.on_close is not None:
            g.on_close(w)
        else:
            g.done.append(w)

    def _merge(self, parts: list[Window], first: int) -> Window:
        if len(parts) == 1:
            return parts[0]
        lat_fn = getattr(self.b, "latencies", None)
        wait_fn = getattr(self.b, "waits", None)
        last = parts[-1]
        served = sum(w.served for w in parts)
        lat_all = lat_fn() if lat_fn is not None and wait_fn is not None else None
        if isinstance(lat_all, LatencySketch) and first in self._snaps and wait_fn is not None:
            snap_lat, snap_wait = self._snaps[first]  # the parts' requests, sketched
            lat_sk = lat_all.since(snap_lat)
            mean, p50, p95, p99 = (v * 1e3 for v in (lat_sk.mean(), *lat_sk.quantiles(
                (0.5, 0.95, 0.99))))  # fmt: skip
            qwait = wait_fn().since(snap_wait).mean() * 1e3
        elif lat_all is not None and not isinstance(lat_all, LatencySketch) and wait_fn is not None:
            lat = lat_all[first : first + served]
            wait = wait_fn()[first : first + served]
            mean, p50, p95, p99 = percentiles_ms(lat)
            qwait = float(wait.mean() * 1e3) if len(wait) else math.nan
        else:  # no per-request records: served-weighted means (documented approximation)
            mean, p50, p95, p99, qwait = (_wmean(parts, a) for a in (
                "latency_mean_ms", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
                "queue_wait_ms"))  # fmt: skip
        batches = sum(w.served / w.mean_batch_size for w in parts if w.mean_batch_size > 0)
        dur = last.t_end - parts[0].t_start
        return Window(
            t_start=parts[0].t_start, t_end=last.t_end, load_level=last.load_level,
            offered=sum(w.offered for w in parts), served=served,
            errors=sum(w.errors for w in parts),
            throughput_rps=served / dur if dur > 0 else math.nan,
            latency_mean_ms=mean, latency_p50_ms=p50, latency_p95_ms=p95, latency_p99_ms=p99,
            queue_wait_ms=qwait, slo_violations=sum(w.slo_violations for w in parts),
            cpu_util=last.cpu_util, mem_util=last.mem_util, gpu_util=last.gpu_util,
            pools={p: r._replace(replica_s=sum(w.pools[p].replica_s for w in parts),
                                 cost=sum(w.pools[p].cost for w in parts))
                   for p, r in last.pools.items()},
            pending_pod_s=sum(w.pending_pod_s for w in parts),
            queue_length=last.queue_length,
            mean_batch_size=served / batches if batches > 0 else math.nan,
            placement=last.placement,
        )  # fmt: skip


def _wmean(parts: list[Window], attr: str) -> float:
    num = den = 0.0
    for w in parts:
        v = getattr(w, attr)
        if v == v and w.served:
            num += v * w.served
            den += w.served
    return num / den if den else math.nan

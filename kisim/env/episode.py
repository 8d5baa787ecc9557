"""Run one episode of a scenario on a backend and collect its windows and summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kisim.core.backend import Backend
from kisim.core.backends import make_backend
from kisim.core.config import Scenario
from kisim.core.faults import episode_events, fault_spans, split_attainment
from kisim.core.platform import PlatformReport
from kisim.core.sketch import LatencySketch
from kisim.core.summary import latency_histogram, summarize
from kisim.core.window import Window


@dataclass
class Episode:
    windows: list[Window]
    summary: dict[str, Any]
    latency_hist: dict[str, list[float]]
    latencies_s: np.ndarray | LatencySketch = field(repr=False)  # a sketch from the twin


def twin_backend() -> Backend:
    return make_backend("twin")


def run_windows(
    backend: Backend,
    scenario: Scenario,
    seed: int,
    on_window: Callable[[Window], None] | None = None,
) -> Episode:
    """Reset, then advance `window_s` at a time until `duration_s` (in-cluster controller only)."""
    backend.reset(scenario, seed)
    windows: list[Window] = []
    t = 0.0
    while t < scenario.duration_s - 1e-9:
        dt = min(scenario.window_s, scenario.duration_s - t)
        w = backend.advance(dt)
        windows.append(w)
        t = w.t_end
        if on_window is not None:
            on_window(w)
    return finish(backend, scenario, windows, seed)


def finish(backend: Backend, scenario: Scenario, windows: list[Window],
           seed: int | None = None) -> Episode:
    """The episode's summary; a run with faults adds SLO attainment during and outside them
    (`kisim.core.faults.split_attainment`; random faults only when `seed` is given)."""
    lat = backend.latencies()
    summ = summarize(windows, lat, backend.waits(), backend.batch_items, backend.batches,
                     scenario.slo_ms)  # fmt: skip
    if scenario.faults.active:
        events = episode_events(scenario, seed) if seed is not None else scenario.faults.events
        summ |= split_attainment(windows, fault_spans(events, scenario.duration_s), scenario.slo_ms)
    if isinstance(backend, PlatformReport):  # the shared platform's figures, when there is one
        summ |= backend.platform_summary()
    return Episode(windows, summ, latency_histogram(lat), lat)

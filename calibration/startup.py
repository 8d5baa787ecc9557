"""Pod start-up phases from events.csv: container start, model load and its spread."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from calibration.bundle import Bundle
from calibration.estimate import Estimate, interval


@dataclass
class Startup:
    container_start_s: Estimate | None  # created -> started (minus scheduling)
    ready_s: Estimate | None  # started -> ready
    model_load_s: Estimate | None
    model_load_cv: Estimate | None
    samples: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)


def replica_phases(bundles: list[tuple[Bundle, str]]) -> dict[str, np.ndarray]:
    """Per replica start-up: created->started, started->ready, created->ready (s)."""
    d1: list[float] = []
    d2: list[float] = []
    d3: list[float] = []
    for bun, pool in bundles:
        ev = bun.events
        if ev is None:
            continue
        sel = ev.pool == pool
        for rep in np.unique(ev.replica[sel]):
            m = sel & (ev.replica == rep)
            first = {e: float(ev.t[m & (ev.event == e)].min()) for e in np.unique(ev.event[m])}
            c, s, r = first.get("created"), first.get("started"), first.get("ready")
            if c is not None and s is not None and s >= c:
                d1.append(s - c)
            if s is not None and r is not None and r >= s:
                d2.append(r - s)
            if c is not None and r is not None and r >= c:
                d3.append(r - c)
    return {
        "created_started": np.asarray(d1),
        "started_ready": np.asarray(d2),
        "created_ready": np.asarray(d3),
    }


def fit_startup(
    ph: dict[str, np.ndarray],
    schedule_s: float,
    probe_delay_s: float,
    probe_period_s: float,
    rng: np.random.Generator,
    n_boot: int,
) -> Startup:
    """Start-up phases. ready = started + max(load, delay) rounded up to the probe period, so
    load ~ mean(started->ready) - period / 2 when loads outlast the probe's initial delay."""
    notes: list[str] = []
    d1, d2 = ph["created_started"], ph["started_ready"]

    def boot(x: np.ndarray, f, method: str) -> Estimate:  # type: ignore[no-untyped-def]
        if len(x) >= 3:
            return interval(
                np.array([f(x[rng.integers(0, len(x), len(x))]) for _ in range(n_boot)]),
                f(x),
                len(x),
                method,
            )
        return Estimate(f(x), math.nan, math.nan, len(x), method + " (too few replicas for a CI)")

    cs = (
        boot(
            d1,
            lambda x: max(float(x.mean()) - schedule_s, 0.0),
            "mean created->started minus scheduling",
        )
        if len(d1)
        else None
    )
    rd = boot(d2, lambda x: float(x.mean()), "mean started->ready") if len(d2) else None
    load = cv = None
    if len(d2):
        if float(d2.mean()) > probe_delay_s + probe_period_s:
            load = boot(
                d2,
                lambda x: max(float(x.mean()) - probe_period_s / 2, 0.0),
                "mean started->ready minus half a probe period",
            )
            if len(d2) >= 3:
                cv = boot(
                    d2,
                    lambda x: float(x.std(ddof=1) / max(x.mean() - probe_period_s / 2, 1e-9)),
                    "sd / mean of started->ready",
                )
            else:
                notes.append("fewer than 3 start-ups: model_load_cv kept at the prior")
        else:
            notes.append(
                f"replicas became ready within the readiness probe's initial delay + one "
                f"period ({probe_delay_s:g} + {probe_period_s:g} s): model_load_s is not "
                "identifiable; kept at the prior"
            )
    if not len(d1) and not len(d2):
        notes.append("no start-up events: start-up times kept at the prior")
    return Startup(cs, rd, load, cv, ph, notes)

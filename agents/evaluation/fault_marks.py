"""Fault windows of an evaluation's runs, for the figures (shaded spans on time series).

Read from each run's resolved config (``config.json``: the scenario's ``faults`` section,
present only when it has faults). Only the *scheduled* events are marked: they are the same
on every seed of a pattern, while random ones (`faults.random`, for training) differ per
seed and would smear over the mean-over-seeds lines.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from kisim.core.faults import FaultsConfig, fault_spans
from kisim.core.rundir import RunRecord, read_config

Spans = list[tuple[float, float, str]]


def fault_spans_of(records: Sequence[RunRecord]) -> dict[str, Spans]:
    """Pattern -> (start, end, kind) of its scheduled faults (the first readable run's)."""
    out: dict[str, Spans] = {}
    for r in records:
        if r.pattern in out:
            continue
        try:
            cfg = read_config(r.path)
        except (OSError, ValueError, KeyError):
            continue
        faults = cfg.get("faults")
        if not isinstance(faults, dict):
            out[r.pattern] = []
            continue
        try:
            fc = FaultsConfig.model_validate(faults)
        except ValidationError:
            continue
        out[r.pattern] = fault_spans(list(fc.events), float(cfg.get("duration_s", 0.0)))
    return {k: v for k, v in out.items() if v}

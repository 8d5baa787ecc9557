"""`kisim record`: drive a user schedule against a fixed serving configuration; write a bundle.

A **record schedule** (``configs/schedules/*.yaml``, ``kind: RecordSchedule``) names the
fixed configuration, the closed-loop users and the duration; it is applied over a base
scenario (``--scenario``, the schedule's ``scenario:`` key, or
``configs/scenarios/default.yaml``). The bundle's format is docs/bundle-format.md.

- `schedule`: the schedule file's model, the users Locust applies, the scenario it makes;
- `recorder`: `Recorder`, the run from start-up to a complete bundle;
- `host`: the recording host (``host.csv`` sampler, hardware facts);
- `bundle_csv`: ``requests.csv``, ``events.csv``, Locust's CSVs;
- `prometheus_export`: ``prometheus/`` (raw ``query_range`` answers, ``index.json``);
- `manifest`: ``manifest.yaml`` (the format's keys) and ``recording.yaml`` (the rest).
"""

from __future__ import annotations

from bridge.record.manifest import MANIFEST_KEYS, split_manifest
from bridge.record.prometheus_export import EXTRA_TRITON_SERIES, index_entry, query_range
from bridge.record.recorder import BundleSummary, Recorder, record
from bridge.record.schedule import RecordSchedule, build_scenario, load_schedule, steps
from kisim.core.trace_bundle import TRITON_SERIES

__all__ = [
    "EXTRA_TRITON_SERIES",
    "MANIFEST_KEYS",
    "TRITON_SERIES",
    "BundleSummary",
    "RecordSchedule",
    "Recorder",
    "build_scenario",
    "index_entry",
    "load_schedule",
    "query_range",
    "record",
    "split_manifest",
    "steps",
]

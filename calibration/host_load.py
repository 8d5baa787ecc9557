"""The recording host's CPU (`host.csv`): the seconds in which it had no spare core.

On a shared host (the local bridge: replicas, Triton's front end, the Python backend and
Locust on the same cores) a saturated machine slows everything outside the instance too:
the client's serialisation, the HTTP front end. That time lands in the overhead (client
latency - queue - compute) and swings from second to second with the scheduler (issue 15:
6-15 ms per request at 150-200 req/s on 2 saturated cores, 1-3 ms with a core to spare).
The twin models the overhead of a host with spare cores, so the overhead fit leaves these
seconds out (`calibration.overhead`).
"""

from __future__ import annotations

import math

import numpy as np

from calibration.bundle import Bundle, recorded_positive

# a host is saturated when its busy cores reach this share of its cores: < 0.2 of a core
# spare on 2 cores, less than a Locust process needs at ~100 req/s (host.csv's loadgen_cores
# is 0.10-0.14 core at 150-200 req/s in traces/cpu1-*-step)
SATURATED_SHARE = 0.9


def host_cores(bundle: Bundle) -> float | None:
    """Cores of the recording host: the manifest's `hardware.host_cores`, else
    `recording.yaml`'s `hardware.cpu_cores` (what `kisim record` writes); None if neither."""
    if bundle.manifest.hardware.host_cores:
        return float(bundle.manifest.hardware.host_cores)
    return recorded_positive(bundle, "hardware", "cpu_cores")


def saturated_spans(bundle: Bundle) -> np.ndarray:
    """(start, end) unix seconds of the host samples at or above `SATURATED_SHARE` of its
    cores (a `host.csv` sample at t covers the period since the previous one); an empty
    (0, 2) array without `host.csv` or a host core count."""
    path = bundle.path / "host.csv"
    cores = host_cores(bundle)
    if not path.is_file() or cores is None:
        return np.empty((0, 2))
    ts: list[float] = []
    busy: list[float] = []
    for line in path.read_text().splitlines()[1:]:
        f = line.split(",")
        try:
            t, b = float(f[0]), float(f[1])
        except (IndexError, ValueError):
            continue  # an empty or partial sample measures nothing
        if math.isfinite(t) and math.isfinite(b):
            ts.append(t)
            busy.append(b)
    if len(ts) < 2:
        return np.empty((0, 2))
    t_arr, b_arr = np.array(ts), np.array(busy)
    starts = np.concatenate([[t_arr[0] - float(np.median(np.diff(t_arr)))], t_arr[:-1]])
    hot = b_arr >= SATURATED_SHARE * cores
    return np.column_stack([starts[hot], t_arr[hot]])


def overlaps(starts: np.ndarray, ends: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Which intervals (starts[i], ends[i]] share time with any span."""
    if len(spans) == 0:
        return np.zeros(len(starts), dtype=bool)
    s0, s1 = spans[:, 0], spans[:, 1]
    hit = (s0[None, :] < ends[:, None]) & (s1[None, :] > starts[:, None])
    return hit.any(axis=1)

"""Per-request records of the load generator, read incrementally from its event file.

The load process (`bridge.locust_run`) appends one CSV line per event and a watermark
after every flush, so the parent knows when a window is complete:

    s,<t_unix>,<pool>                                  a request was sent (offered)
    c,<t_start_unix>,<latency_ms>,<ok>,<pool>,<endpoint>  it completed (ok = 1/0)
    u,<t_unix>,<users>                                 the closed-loop user count changed
    r,<t_unix>                                         the process is ready for the clock
    w,<t_unix>                                         every event before t is written

A window [a, b) offers the requests *sent* in it and serves/fails those that *complete*
in it; latency percentiles are over its successful completions (as the twin reports).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True, slots=True)
class WindowRecords:
    offered: int
    served: int
    errors: int
    latencies_s: np.ndarray  # successful completions in the window


class RequestLog:
    """Incremental reader of a load process's event file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pos = 0
        self._rest = b""
        self.watermark = -math.inf
        self.ready_at: float | None = None
        self.sent: list[float] = []
        self.start: list[float] = []
        self.latency_ms: list[float] = []
        self.ok: list[bool] = []
        self.pool: list[str] = []
        self.endpoint: list[str] = []
        self.users: list[tuple[float, int]] = []

    def read(self) -> None:
        """Consume whatever the load process has appended since the last call."""
        try:
            with self.path.open("rb") as f:
                f.seek(self._pos)
                chunk = f.read()
        except FileNotFoundError:
            return
        self._pos += len(chunk)
        data = self._rest + chunk
        lines = data.split(b"\n")
        self._rest = lines.pop()  # a partial last line waits for the next read
        for raw in lines:
            f = raw.decode().split(",")
            kind = f[0]
            if kind == "s":
                self.sent.append(float(f[1]))
            elif kind == "c":
                self.start.append(float(f[1]))
                self.latency_ms.append(float(f[2]))
                self.ok.append(f[3] == "1")
                self.pool.append(f[4])
                self.endpoint.append(f[5])
            elif kind == "u":
                self.users.append((float(f[1]), int(f[2])))
            elif kind == "r":
                self.ready_at = float(f[1])
            elif kind == "w":
                self.watermark = max(self.watermark, float(f[1]))

    def window(self, a: float, b: float) -> WindowRecords:
        """Counts and latencies of the window [a, b) in unix seconds."""
        sent = np.asarray(self.sent)
        start = np.asarray(self.start)
        lat = np.asarray(self.latency_ms) / 1000.0
        ok = np.asarray(self.ok, dtype=bool)
        done = start + lat
        inside = (done >= a) & (done < b)
        return WindowRecords(
            offered=int(np.count_nonzero((sent >= a) & (sent < b))),
            served=int(np.count_nonzero(inside & ok)),
            errors=int(np.count_nonzero(inside & ~ok)),
            latencies_s=lat[inside & ok],
        )

    def latencies_s(self, a: float, b: float) -> np.ndarray:
        """Successful latencies completed in [a, b), for the run summary."""
        return self.window(a, b).latencies_s

    def write_requests_csv(self, out: Path, a: float = -math.inf, b: float = math.inf) -> int:
        """requests.csv of a trace bundle: start_unix_s,latency_ms,ok,pool,endpoint."""
        n = 0
        with out.open("w") as f:
            f.write("start_unix_s,latency_ms,ok,pool,endpoint\n")
            for s, lms, ok, p, e in zip(
                self.start, self.latency_ms, self.ok, self.pool, self.endpoint, strict=True
            ):
                if a <= s < b:
                    f.write(f"{s:.6f},{lms:.3f},{int(ok)},{p},{e}\n")
                    n += 1
        return n

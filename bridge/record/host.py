"""The recording host: how busy it was (`HostSampler`, ``host.csv``) while replicas, Locust
and Prometheus shared it, and the Triton stack's versions; what the machine is comes from
`kisim.core.host`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import threading
import time
from pathlib import Path


class HostSampler:
    """Samples the host's busy cores, the load generator's cores and the 1-min load average
    every `period_s` (`host.csv`): the CPU the replicas compete with on a shared machine."""

    def __init__(self, period_s: float = 1.0) -> None:
        self.period_s = period_s
        self.pid: int | None = None
        self.rows: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kisim-host-sampler", daemon=True)
        self._tck = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _host() -> tuple[float, float]:
        with open("/proc/stat") as f:
            v = [float(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0.0)
        return sum(v[:8]) - idle, idle  # busy, idle jiffies (guest time is inside user)

    def _proc(self) -> float:
        if self.pid is None:
            return math.nan
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                x = f.read().rsplit(")", 1)[1].split()
            return (float(x[11]) + float(x[12])) / self._tck
        except (OSError, IndexError, ValueError):
            return math.nan

    def _run(self) -> None:
        busy0, _ = self._host()
        p0, t0 = self._proc(), time.time()
        while not self._stop.wait(self.period_s):
            busy, _ = self._host()
            p, t = self._proc(), time.time()
            dt = t - t0
            with open("/proc/loadavg") as f:
                load1 = float(f.read().split()[0])
            lg = (p - p0) / dt if math.isfinite(p) and math.isfinite(p0) else math.nan
            host = (busy - busy0) / self._tck / dt
            self.rows.append(f"{t:.3f},{host:.3f},{'' if math.isnan(lg) else f'{lg:.3f}'},{load1}")
            busy0, p0, t0 = busy, p, t

    def start(self) -> HostSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def write(self, path: Path) -> None:
        path.write_text("t_unix_s,host_busy_cores,loadgen_cores,loadavg_1m\n"
                        + "".join(r + "\n" for r in self.rows))  # fmt: skip


def triton_venv_versions() -> dict[str, str]:
    """Versions of the local Triton stack's packages (its own virtual environment)."""
    from bridge import paths

    code = ("import importlib.metadata as m, json; print(json.dumps({k: m.version(k) for k in "
            "('nvidia-pytriton', 'onnxruntime', 'numpy')}))")  # fmt: skip
    try:
        out = subprocess.run([str(paths.triton_python()), "-c", code], capture_output=True,
                             text=True, timeout=60, check=True)  # fmt: skip
        return dict(json.loads(out.stdout))
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}

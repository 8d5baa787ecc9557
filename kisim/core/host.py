"""What the machine running kisim is: facts for provenance and trace manifests.

Results from real serving and speed figures depend on the host, so every record of one
names the CPU model and memory; read from Linux's /proc, with `platform`'s answer (or
None) where /proc is not there.
"""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str | None:
    """The CPU's model name (/proc/cpuinfo's first ``model name``), or None if unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def mem_gib() -> float | None:
    """Total memory in GiB (/proc/meminfo's ``MemTotal``, one decimal), or None if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None

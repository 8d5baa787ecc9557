"""kisim.core.host: the machine facts every provenance record names."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from kisim.core import host


def test_reads_proc_on_linux() -> None:
    if not Path("/proc/cpuinfo").is_file():
        pytest.skip("no /proc here")
    model = host.cpu_model()
    assert model and "model name" not in model and ":" not in model
    mem = host.mem_gib()
    assert mem is not None and mem > 0


def test_without_proc_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(self: Path, *a: object, **k: object) -> str:
        raise OSError("no /proc")

    monkeypatch.setattr(Path, "read_text", gone)
    assert host.cpu_model() == (platform.processor() or None)
    assert host.mem_gib() is None

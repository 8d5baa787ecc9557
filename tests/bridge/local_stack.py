"""Helpers for the local real-stack tests (imported by tests/bridge/test_local_*.py).

The stack needs `scripts/setup-bridge.sh` (Prometheus, .venv-triton, the ONNX model) and
the project's [bridge] extra; without them the tests skip and say which piece is missing.
"""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from typing import Any

import pytest

from kisim.core.config import Scenario, load_scenario, override

ROOT = Path(__file__).resolve().parents[2]
USERS = 12


def _missing() -> str | None:
    for mod in ("locust", "tritonclient", "prometheus_api_client"):
        if importlib.util.find_spec(mod) is None:
            return f"python package '{mod}' missing: install the project with its [bridge] extra"
    from bridge.paths import missing_setup

    return missing_setup()


MISSING = _missing()
needs_stack = pytest.mark.skipif(MISSING is not None, reason=f"local stack not set up: {MISSING}")


def small_scenario(**dotted: Any) -> Scenario:
    """The default scenario made short and light enough for a 2-core CI machine.

    Scrape every second and read rates over one 8 s window, so a window's Prometheus view
    covers the same requests as its records; 12 closed-loop users thinking 0.2-0.6 s.
    """
    base: dict[str, Any] = {
        "controller.name": "static",
        "window_s": 8,
        "duration_s": 24,
        "metrics.scrape_interval_s": 1,
        "metrics.rate_window_s": 8,
        "traffic.pattern": {"name": "constant", "params": {"level": USERS}},
        "traffic.wait_time_s": [0.2, 0.6],
        "pools.gpu.replicas": 1,
        "pools.gpu.max_replicas": 2,
        "pools.cpu.replicas": 1,
        "pools.cpu.max_replicas": 2,
    }
    sc = load_scenario(ROOT / "configs" / "scenarios" / "default.yaml")
    return override(sc, "tests/bridge", **{**base, **dotted})


def port_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0

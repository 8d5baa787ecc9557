"""The fuzz suite's count of inputs tried: each test records ``fuzz_inputs`` (a user property,
which pytest-xdist carries back from its workers) and the total closes the terminal summary."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

_COUNTS: Counter[str] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        for key, value in report.user_properties:
            if key == "fuzz_inputs":
                _COUNTS[report.nodeid.split("::")[-1]] += int(value)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _COUNTS:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(_COUNTS.items()))
        terminalreporter.write_line(f"fuzz: {sum(_COUNTS.values())} inputs tried ({parts})")

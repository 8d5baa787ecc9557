"""Evaluate PromQL on synthetic scrapes with Prometheus' own engine, offline.

`promtool test rules` (shipped with the `prometheus` package that scripts/setup-bridge.sh
installs) loads `input_series` into an in-memory TSDB and evaluates `promql_expr_test`
expressions against it: no server, no port. We give every expression an empty
expectation, so each one "fails" and promtool prints what it got, in order; that is the
value. Each expression is wrapped so that it always returns one sample (``MISSING`` when
PromQL returns nothing), which keeps the printed values aligned with the queries.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

STEP_S = 0.1  # sample grid: scrape times are multiples of 100 ms
MISSING = -1e300
STALE = math.inf  # a value standing for Prometheus' staleness marker (failed scrape)
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="no `promtool` on PATH (scripts/setup-bridge.sh installs it)"
)


def _values(samples: dict[float, float]) -> str:
    """promtool's expanding notation on the 100-ms grid: `_` where there is no sample."""
    if not samples:
        return ""
    last = max(int(round(t / STEP_S)) for t in samples)
    grid: list[str] = ["_"] * (last + 1)
    for t, v in samples.items():
        grid[int(round(t / STEP_S))] = "stale" if v == STALE else repr(float(v))
    return " ".join(grid)


def evaluate(
    series: dict[str, dict[float, float]], queries: list[tuple[str, float]], tmp: Path
) -> list[float]:
    """Each query's single value at its time (s); NaN where PromQL returns nothing."""
    assert PROMTOOL is not None
    tests = [
        {
            "interval": f"{int(STEP_S * 1000)}ms",
            "input_series": [{"series": k, "values": _values(v)} for k, v in series.items()],
            "promql_expr_test": [
                {
                    "expr": f"({q}) or on() vector({MISSING})",
                    "eval_time": f"{int(round(at * 1000))}ms",
                    "exp_samples": [],
                }
                for q, at in queries
            ],
        }
    ]
    f = tmp / "promql_test.yml"
    # promtool loads samples only up to its last rule-evaluation step (a multiple of the
    # evaluation interval): step on the sample grid, or the last samples go missing
    step = f"{int(STEP_S * 1000)}ms"
    f.write_text(yaml.safe_dump({"evaluation_interval": step, "tests": tests}))
    out = subprocess.run([PROMTOOL, "test", "rules", str(f)], capture_output=True, text=True,
                         timeout=60, check=False)  # fmt: skip
    got = re.findall(r"got: \{\} (\S+)", out.stdout + out.stderr)
    assert len(got) == len(queries), out.stdout + out.stderr
    vals = [float(g) for g in got]
    return [math.nan if v <= MISSING / 10 else v for v in vals]

"""A scenario file with the command line's overrides applied, each validated like file contents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kisim.core.config import Scenario, load_scenario, override, with_pattern


def prepare(scenario: Path, pattern: str | None, policy: str | None, duration: float | None,
            seed: int | None = None) -> Scenario:  # fmt: skip
    """Load a scenario and apply CLI overrides, each validated and named in errors."""
    sc = load_scenario(scenario)
    if pattern is not None:
        sc = with_pattern(sc, pattern)
    if policy is not None:
        sc = override(sc, f"{scenario} (--policy)", **{"controller.name": policy})
    if duration is not None:
        sc = override(sc, f"{scenario} (--duration)", duration_s=duration)
    if seed is not None:
        sc = override(sc, f"{scenario} (--seed)", seed=seed)
    return sc


def run_meta(sc: Scenario, policy: str, seed: int, backend: str = "twin") -> dict[str, Any]:
    return {"scenario": sc.name, "pattern": sc.traffic.pattern.name, "policy": policy,
            "seed": seed, "backend": backend}  # fmt: skip

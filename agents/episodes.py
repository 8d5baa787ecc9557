"""How one evaluation run executes: a policy on a scenario, pattern and seed -> a run dir.

`TwinEpisode` is picklable (it carries the resolved scenario as JSON) so the
harness can fan runs out over processes. In-cluster controllers (`static`, `hpa`)
run inside the twin; the other policies act through `KisimEnv` (see
`agents.policies`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.rundir import write_run
from kisim.config import Scenario, override, resolved_json, with_pattern
from kisim.episode import run_windows, twin_backend
from kisim.errors import KisimError

IN_CLUSTER = ("static", "hpa")


def known_policies() -> list[str]:
    return list(IN_CLUSTER)


def check_policies(specs: list[str]) -> None:
    """Unknown policy names end the command before any run starts."""
    for spec in specs:
        if spec not in IN_CLUSTER:
            raise KisimError(f"unknown policy '{spec}' (known: {', '.join(known_policies())})")


@dataclass(frozen=True)
class TwinEpisode:
    scenario: dict[str, Any]  # resolved scenario JSON

    def __call__(self, policy: str, pattern: str, seed: int, run_dir: Path) -> None:
        sc = with_pattern(Scenario.model_validate(self.scenario), pattern)
        sc = override(sc, f"--policies {policy}", **{"controller.name": policy})
        ep = run_windows(twin_backend(), sc, seed)
        meta = {"scenario": sc.name, "pattern": pattern, "policy": policy, "seed": seed,
                "backend": "twin"}  # fmt: skip
        write_run(run_dir, {**json.loads(resolved_json(sc)), **meta}, ep.windows,
                  {**meta, **ep.summary}, ep.latency_hist)  # fmt: skip

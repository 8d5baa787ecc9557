"""One sweep run: a policy on the scenario of one grid point, one seed, in the twin."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.evaluation.policy_run import run_policy, write_policy_run
from agents.policies import make_policy
from kisim.core.config import Scenario, override


@dataclass(frozen=True)
class SweepEpisode:
    """Picklable (for --jobs and --ray): the base scenario as JSON and each point's overrides
    by label; the run's 'pattern' is the point's label."""

    scenario: dict[str, Any]
    points: dict[str, dict[str, Any]]
    trust_model: bool = False

    def __call__(self, policy: str, point: str, seed: int, run_dir: Path) -> None:
        if point not in self.points:
            raise ValueError(f"no grid point '{point}' in this sweep")
        sc = override(Scenario.model_validate(self.scenario), f"--param {point}",
                      **self.points[point])  # fmt: skip
        run = run_policy(make_policy(policy, self.trust_model), sc, seed)
        write_policy_run(run_dir, run, policy, point, seed, "twin")

"""One benchmark run: a policy on a suite scenario exactly as the file states it (its own
load pattern and parameters: a suite scenario is not re-patterned), one seed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.evaluation.policy_run import run_policy, write_policy_run
from agents.policies import make_policy
from kisim.core.config import Scenario


def label(sc: Scenario) -> str:
    """The 'pattern' column of a suite scenario's runs: its own pattern's name."""
    return sc.traffic.pattern.name


@dataclass(frozen=True)
class ScenarioEpisode:
    scenario: dict[str, Any]  # resolved scenario JSON (picklable for --jobs)
    trust_model: bool = False

    def __call__(self, policy: str, pattern: str, seed: int, run_dir: Path) -> None:
        sc = Scenario.model_validate(self.scenario)
        if pattern != label(sc):
            raise ValueError(f"run of pattern '{pattern}' asked of scenario {sc.name} "
                             f"(its pattern is '{label(sc)}')")  # fmt: skip
        run = run_policy(make_policy(policy, self.trust_model), sc, seed)
        write_policy_run(run_dir, run, policy, pattern, seed, "twin")

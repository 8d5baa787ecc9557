"""The truth the synthetic bundles are drawn from: one CPU device, known parameters."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from kisim.core.config import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCENARIO = ROOT / "configs" / "scenarios" / "default.yaml"

# The "true" device the synthetic bundles are drawn from.
TRUE = {
    "base_ms": 9.0,
    "per_item_ms": 7.0,
    "cv": 0.15,
    "overhead_ms": 25.0,
    "overhead_cv": 0.25,
    "core_scaling": 0.6,
    "container_start_s": 1.5,
    "model_load_s": 4.0,
    "model_load_cv": 0.2,
}


def true_scenario(
    *,
    users: list[int],
    step_s: float = 45.0,
    instances: int = 1,
    batching: dict[str, Any] | None = None,
    name: str = "syn",
) -> Scenario:
    """One CPU replica of the true device under a stepped users schedule."""
    base = load_scenario(DEFAULT_SCENARIO).model_dump(mode="json")
    data = copy.deepcopy(base)
    data["name"] = name
    data["duration_s"] = step_s * len(users)
    data["traffic"] = {
        "mode": "closed",
        "wait_time_s": [0.5, 1.5],
        "pattern": {"name": "step", "params": {"levels": users, "step_s": step_s}},
    }
    data["controller"] = {"name": "static"}
    data["calibration"]["devices"] = {
        "cpu": {
            "kind": "cpu",
            "description": "synthetic truth",
            "service": {
                "base_ms": TRUE["base_ms"],
                "per_item_ms": TRUE["per_item_ms"],
                "noise": {"kind": "lognormal", "cv": TRUE["cv"]},
            },
            "reference_cores": 2.0,
            "core_scaling": TRUE["core_scaling"],
            "overhead_ms": TRUE["overhead_ms"],
            "overhead_noise": {"kind": "lognormal", "cv": TRUE["overhead_cv"]},
            "cpu_per_request_ms": 3.0,
            "startup": {
                "schedule_s": 0.0,
                "container_start_s": TRUE["container_start_s"],
                "model_load_s": TRUE["model_load_s"],
                "model_load_cv": TRUE["model_load_cv"],
                "readiness_initial_delay_s": 0.0,
                "readiness_period_s": 0.25,
            },
        }
    }
    data["pools"] = {
        "cpu": {
            "device": "cpu",
            "replicas": 1,
            "min_replicas": 1,
            "max_replicas": 1,
            "resources": {"cpu": 2.0, "memory_gib": 4.0},
            "instances": instances,
            "batching": batching
            if batching is not None
            else {"enabled": True, "max_batch_size": 8, "max_queue_delay_us": 2000},
        }
    }
    return Scenario.model_validate(data)

"""Scenario builders shared by the twin's correctness tests.

Every scenario starts from the shipped `configs/scenarios/default.yaml` and is
changed through the validated schema (never by poking twin internals), so a test
scenario is a scenario a user could write.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kisim.core.config import Scenario, load_scenario, override

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCENARIO = ROOT / "configs" / "scenarios" / "default.yaml"


@pytest.fixture(scope="session")
def default_scenario() -> Scenario:
    return load_scenario(DEFAULT_SCENARIO)


@pytest.fixture(scope="session")
def make_scenario(default_scenario: Scenario) -> Callable[..., Scenario]:
    """`make_scenario(**{"dotted.path": value})`: the default scenario with overrides."""

    def make(**dotted: Any) -> Scenario:
        return override(default_scenario, "test", **dotted)

    return make


@pytest.fixture(scope="session")
def queue_scenario(default_scenario: Scenario) -> Callable[..., Scenario]:
    """A single-station queue the textbook formulas describe.

    One replica of a `cpu` device with `core_scaling: 0` (concurrent executions do
    not slow each other down), no per-request overhead (latency = queue wait +
    service), batching off, `servers` = `instance_group.count` concurrent
    executions, static controller. Open loop: `traffic.pattern` is a constant rate
    `lam` (req/s); closed loop: a constant number of users `users` with think time
    uniform on `think`. Every request's latency is kept (`metrics.latency_stats: exact`):
    the queueing-theory tests read them one by one.
    """

    def make(
        *,
        mean_service_s: float,
        servers: int = 1,
        service: str = "exponential",
        lam: float | None = None,
        arrival: str = "exponential",
        users: int | None = None,
        think: tuple[float, float] = (0.5, 1.5),
        batching: dict[str, Any] | None = None,
        per_item_s: float = 0.0,
    ) -> Scenario:
        data = copy.deepcopy(default_scenario.model_dump(mode="json"))
        if lam is not None:
            data["traffic"] = {
                "mode": "open",
                "arrival": arrival,
                "pattern": {"name": "constant", "params": {"level": lam}},
            }
        else:
            assert users is not None
            data["traffic"] = {
                "mode": "closed",
                "wait_time_s": list(think),
                "pattern": {"name": "constant", "params": {"level": users}},
            }
        data["controller"] = {"name": "static"}
        data["metrics"]["latency_stats"] = "exact"
        data["calibration"]["devices"] = {
            "station": {
                "kind": "cpu",
                "description": "textbook single-station queue",
                "service": {
                    "base_ms": mean_service_s * 1e3,
                    "per_item_ms": per_item_s * 1e3,
                    "noise": {"kind": service},
                },
                "core_scaling": 0.0,
                "overhead_ms": 0.0,
            }
        }
        data["pools"] = {
            "cpu": {
                "device": "station",
                "replicas": 1,
                "instances": servers,
                "batching": batching if batching is not None else {"enabled": False},
            }
        }
        return Scenario.model_validate(data)

    return make


@pytest.fixture(autouse=True)
def no_stuck_dataplane(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn a data plane that stops making progress into a test failure, not a hang.

    `DataPlane.run_until` calls the kernel until it returns FINISHED, making room
    (`_make_space`) whenever it returns NEED_SPACE. If the kernel keeps asking for
    room that `_make_space` does not provide, that loop never ends; here a second
    request for room with no event processed in between raises instead.
    """
    from twin import dataplane

    orig = getattr(dataplane.DataPlane, "_make_space", None)
    if orig is None:
        return

    def guarded(self: Any) -> None:
        state = (self.gi.tobytes(), self.ridx.tobytes())
        if getattr(self, "_test_last_space_state", None) == state:
            raise AssertionError(
                "data plane stuck: the kernel asked for buffer room twice without "
                f"processing an event (gi={self.gi.tolist()}, queue capacity "
                f"{self.qt.shape[1]})"
            )
        self._test_last_space_state = state
        orig(self)

    monkeypatch.setattr(dataplane.DataPlane, "_make_space", guarded)

"""The record schedule (``configs/schedules/*.yaml``, ``kind: RecordSchedule``).

It names the fixed serving configuration (pools: replicas, instances, resources, batching;
routing), the closed-loop users (wait-time bounds, and either stepwise ``{t_s, users}``
points or a kisim pattern) and the duration. `build_scenario` applies it over a base
scenario that supplies device keys, calibration and cluster; only the schedule's pools
serve, at min = max = replicas, with no controller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kisim.core.config import (
    BatchingConfig,
    PatternSpec,
    ResourcesConfig,
    RoutingConfig,
    Scenario,
    load_model,
    load_scenario,
    validated,
)
from kisim.core.errors import ConfigError
from kisim.core.paths import default_scenario

DEFAULT_SCENARIO = default_scenario()
SHAPE_TICK_S = 1.0  # Locust's LoadTestShape tick (bridge.locust_run)


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SchedulePoint(_M):
    t_s: float = Field(ge=0, description="From this time on (s after the start)...")
    users: int = Field(ge=0, description="...this many closed-loop users.")


class ScheduleTraffic(_M):
    mode: Literal["closed"] = Field("closed", description="Closed-loop Locust users only.")
    wait_time_s: tuple[float, float] = Field(
        (0.5, 1.5), description="Locust between(min, max) think time, s."
    )
    schedule: list[SchedulePoint] | None = Field(
        None, description="Stepwise users: each point holds until the next."
    )
    pattern: PatternSpec | None = Field(
        None, description="A kisim pattern (level = users), sampled on Locust's 1 s ticks."
    )

    @model_validator(mode="after")
    def _one(self) -> ScheduleTraffic:
        if (self.schedule is None) == (self.pattern is None):
            raise ValueError("give exactly one of schedule and pattern")
        if not 0 <= self.wait_time_s[0] <= self.wait_time_s[1]:
            raise ValueError("wait_time_s: need 0 <= min <= max")
        if self.schedule is not None:
            if not self.schedule:
                raise ValueError("schedule: at least one point")
            if self.schedule[0].t_s != 0:
                raise ValueError("schedule: the first point must be at t_s 0")
            ts = [p.t_s for p in self.schedule]
            if any(b <= a for a, b in zip(ts, ts[1:], strict=False)):
                raise ValueError("schedule: t_s must increase")
        return self


class PoolSpec(_M):
    device: str | None = Field(None, description="Calibration device key (default: the base's).")
    replicas: int = Field(1, ge=1, description="Fixed replica count.")
    instances: int = Field(1, ge=1, description="instance_group.count.")
    resources: ResourcesConfig | None = Field(None, description="Default: the base's.")
    batching: BatchingConfig = Field(description="Triton's dynamic batcher.")


class ServiceTimeSpec(_M):
    batch_sizes: list[int] = Field([1, 2, 4, 8, 16], min_length=1, description="Up to max batch.")
    repeats: int = Field(20, ge=1, description="Measured requests per batch size.")
    warmup: int = Field(3, ge=0, description="Unrecorded requests per batch size first.")


class SweepSpec(_M):
    """A perf_analyzer-style sweep: each level held for ``level_s``, the first ``warmup_s``
    of it not measured; closed-loop users without think time (perf_analyzer's concurrency
    mode: a request is sent as soon as the previous answer arrives)."""

    mode: Literal["concurrency"] = Field(
        "concurrency",
        description="concurrency only: Locust users are closed-loop (perf_analyzer's "
        "--request-rate-range output can be imported, not recorded here).",
    )
    levels: list[int] = Field(min_length=1, description="Concurrent requests per level.")
    level_s: float = Field(30.0, gt=0, le=600, description="Seconds each level holds.")
    warmup_s: float = Field(5.0, ge=0, description="Seconds of each level not measured.")

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        if any(x < 1 for x in self.levels):
            raise ValueError("levels: every level is at least 1")
        if len(set(self.levels)) != len(self.levels):
            raise ValueError("levels: each level once")
        if self.warmup_s >= self.level_s:
            raise ValueError("warmup_s must be below level_s")
        return self


class RecordSchedule(_M):
    apiVersion: Literal["kisim/v1"] = "kisim/v1"
    kind: Literal["RecordSchedule"] = "RecordSchedule"
    name: str = Field(min_length=1, description="The bundle's name.")
    description: str = ""
    scenario: str | None = Field(None, description="Base scenario, relative to this file.")
    seed: int = Field(0, ge=0)
    duration_s: float = Field(gt=0, le=3600, description="Users drop to 0 at this time.")
    traffic: ScheduleTraffic
    pools: dict[Literal["gpu", "cpu"], PoolSpec] = Field(min_length=1)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    scrape_interval_s: float = Field(1.0, gt=0, le=60, description="Prometheus scrape interval.")
    service_times: ServiceTimeSpec = Field(default_factory=ServiceTimeSpec)
    sweep: SweepSpec | None = Field(
        None,
        description="A concurrency sweep instead of `traffic`'s schedule: the bundle also gets "
        "perf/perf.csv in perf_analyzer's columns (bridge/record/perf_csv.py).",
    )

    @model_validator(mode="before")
    @classmethod
    def _sweep_schedule(cls, data: Any) -> Any:
        """A sweep writes the users schedule (and the duration) itself."""
        if not isinstance(data, dict) or not isinstance(data.get("sweep"), dict):
            return data
        sw = data["sweep"]
        levels, level_s = sw.get("levels"), sw.get("level_s", 30.0)
        if not isinstance(levels, list) or not isinstance(level_s, int | float):
            return data  # the field validators say what is wrong
        traffic = dict(data.get("traffic") or {})
        if traffic.get("schedule") is not None or traffic.get("pattern") is not None:
            raise ValueError("sweep: give either sweep or traffic.schedule/pattern, not both")
        if list(traffic.get("wait_time_s", (0, 0))) != [0, 0]:
            raise ValueError("sweep: traffic.wait_time_s must be [0, 0] (no think time)")
        traffic.update(
            wait_time_s=(0.0, 0.0),
            schedule=[{"t_s": i * level_s, "users": n} for i, n in enumerate(levels)],
        )
        out = {**data, "traffic": traffic}
        out.setdefault("duration_s", len(levels) * level_s)
        return out

    @model_validator(mode="after")
    def _ends(self) -> RecordSchedule:
        if self.sweep is not None:
            if len(self.pools) != 1:
                raise ValueError("sweep: exactly one pool (a perf_analyzer run measures one)")
            if abs(self.duration_s - len(self.sweep.levels) * self.sweep.level_s) > 1e-9:
                raise ValueError("sweep: duration_s is len(levels) x level_s (leave it out)")
        if self.traffic.schedule and self.traffic.schedule[-1].t_s >= self.duration_s:
            raise ValueError("traffic.schedule: every t_s must be below duration_s")
        return self


def load_schedule(path: Path | str) -> RecordSchedule:
    return load_model(RecordSchedule, path)


def steps(spec: RecordSchedule) -> list[tuple[float, int]]:
    """The stepwise users (t_s, users) Locust applies, ending with 0 users at duration_s.

    A pattern is sampled where the shape samples it: round(level(k)) at each 1 s tick."""
    tr = spec.traffic
    if tr.schedule is not None:
        pts = [(p.t_s, p.users) for p in tr.schedule]
    else:
        from kisim.core.patterns import make_pattern

        assert tr.pattern is not None
        pat = make_pattern(tr.pattern.name, tr.pattern.params, spec.seed)
        pts = []
        k = 0.0
        while k < spec.duration_s:
            n = max(0, int(round(pat.level(k))))
            if not pts or pts[-1][1] != n:
                pts.append((k, n))
            k += SHAPE_TICK_S
    return [*pts, (spec.duration_s, 0)]


def write_replay(d: Path, steps: list[tuple[float, int]]) -> Path:
    """The steps as the `replay` pattern's CSV (``d/schedule.csv``)."""
    p = d / "schedule.csv"
    p.write_text("t_s,level\n" + "".join(f"{t:g},{u}\n" for t, u in steps))
    return p


def build_scenario(spec: RecordSchedule, base: Path, replay_csv: Path) -> Scenario:
    """The base scenario with the schedule's fixed pools, routing, users and duration."""
    sc = load_scenario(base)
    data = sc.model_dump(mode="json")
    pools: dict[str, Any] = {}
    for name, p in spec.pools.items():
        cfg = data["pools"].get(name)
        device = p.device or (cfg or {}).get("device")
        if device is None:
            raise ConfigError(f"pools.{name}.device: the base scenario {base} has no pool "
                              f"'{name}' to take it from")  # fmt: skip
        res = p.resources.model_dump() if p.resources else (cfg or {}).get("resources", {})
        pools[name] = {
            "device": device, "replicas": p.replicas, "min_replicas": p.replicas,
            "max_replicas": p.replicas, "instances": p.instances, "resources": res,
            "batching": p.batching.model_dump(),
        }  # fmt: skip
    data["name"] = spec.name
    data["seed"] = spec.seed
    data["pools"] = pools
    data["routing"] = spec.routing.model_dump()
    data["duration_s"] = spec.duration_s
    data["window_s"] = min(data["window_s"], spec.duration_s)
    data["controller"] = {"name": "static"}
    data["metrics"]["scrape_interval_s"] = spec.scrape_interval_s
    data["metrics"]["rate_window_s"] = max(data["metrics"]["rate_window_s"],
                                           2 * spec.scrape_interval_s)  # fmt: skip
    data["traffic"] = {
        "mode": "closed",
        "pattern": {"name": "replay", "params": {"csv": str(replay_csv)}},
        "wait_time_s": list(spec.traffic.wait_time_s),
    }
    return validated(Scenario, data, f"{spec.name} over {base}")

"""The ``env`` section of a scenario: how `kisim.env.environment.KisimEnv` observes, acts, rewards.

Preset names are checked against the registries (`kisim.env.observation`, `kisim.env.actions`,
`kisim.env.rewards`), imported lazily so the schema stays importable on its own.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from kisim.core.devices import NonNeg, Pos, StrictModel

PosInt = Annotated[int, Field(ge=1)]


class ResourceActionConfig(StrictModel):
    """Steps and bounds of the `resources` action preset (vertical scaling of pod templates)."""

    cpu_step: Pos = Field(0.5, description="Cores added or removed per step.")
    memory_step_gib: Pos = Field(0.5, description="Memory added or removed per step, GiB.")
    cpu_min: Pos = Field(0.5, description="Smallest CPU request = limit, cores.")
    cpu_max: Pos = Field(8.0, description="Largest CPU request = limit, cores.")
    memory_min_gib: Pos = Field(2.0, description="Smallest memory limit, GiB.")
    memory_max_gib: Pos = Field(16.0, description="Largest memory limit, GiB.")
    batch_sizes: list[int] = Field(
        default_factory=lambda: [1, 2, 4, 8, 16, 32, 64],
        min_length=1,
        description="Ladder of max_batch_size values; one action moves one rung.",
    )
    instances_max: int = Field(4, ge=1, description="Most instance_group.count per pod.")

    @model_validator(mode="after")
    def _ranges(self) -> ResourceActionConfig:
        if self.cpu_min > self.cpu_max or self.memory_min_gib > self.memory_max_gib:
            raise ValueError("min is larger than max")
        bs = self.batch_sizes
        if any(b < 1 for b in bs) or sorted(set(bs)) != bs:
            raise ValueError("batch_sizes must be increasing positive integers")
        return self


class HPATargetActionConfig(StrictModel):
    """Steps and bounds of the `hpa-target` action preset."""

    step: Pos = Field(0.05, description="Change of the target utilisation per action rung.")
    min: Annotated[float, Field(gt=0, le=1.0)] = Field(0.2, description="Lowest target.")
    max: Annotated[float, Field(gt=0, le=1.0)] = Field(0.95, description="Highest target.")

    @model_validator(mode="after")
    def _range(self) -> HPATargetActionConfig:
        if self.min > self.max:
            raise ValueError("min is larger than max")
        return self


class EnvConfig(StrictModel):
    """The Gymnasium view (used by `kisim.env.environment`; see docs/environment.md)."""

    step_s: Pos = Field(30.0, description="Simulated seconds per agent step.")
    observation: str = Field(
        "default",
        description="Observation preset: default | extended | default-stale | extended-stale.",
    )
    action: str = Field(
        "replicas",
        description="Action preset: replicas | resources | hpa-target | min-scale | none.",
    )
    autoscaler: str | None = Field(
        None,
        description="The in-cluster autoscaler whose min-scale the `min-scale` action sets, "
        "ticking inside each agent step: a spec of a registered one (agents.policies.min_scale: "
        "kpa[:ARG], Knative's KPA; keda[:ARG], KEDA's request rate through the HPA). "
        "Only the min-scale preset uses it.",
    )
    replica_steps: tuple[PosInt, PosInt] = Field(
        (1, 2),
        description="Pods a small and a large move of the replicas action add or remove: its "
        "five rungs per pool are -large, -small, 0, +small, +large.",
    )
    reward: str = Field(
        "weighted", description="Reward preset: weighted | qos | cost | cost_requests."
    )
    reward_weights: dict[str, float] = Field(
        default_factory=dict, description="Weights by term name; missing terms keep defaults."
    )
    reward_baseline: Literal["slo", "static"] = Field(
        "slo",
        description="What improvements are measured against: slo = the SLO and the users' "
        "demand (free); static = the static policy's run of the same pattern and seed.",
    )
    history_steps: int = Field(
        4, ge=2, description="Steps of offered load behind the load trend and variance features."
    )
    throughput_scale_rps: Pos | None = Field(
        None, description="Throughput that normalises to 1; null = derived from the scenario."
    )
    prices: dict[str, NonNeg] = Field(
        default_factory=dict,
        description="Relative price of one replica-second by pool name (resource efficiency); "
        "a pool not named costs 4 (GPU device) or 1 (CPU device).",
    )
    resources: ResourceActionConfig = Field(default_factory=ResourceActionConfig)
    hpa_target: HPATargetActionConfig = Field(default_factory=HPATargetActionConfig)

    @model_validator(mode="after")
    def _steps(self) -> EnvConfig:
        small, large = self.replica_steps
        if small >= large:
            raise ValueError(f"replica_steps: the small move ({small}) must be smaller than "
                             f"the large one ({large})")
        return self

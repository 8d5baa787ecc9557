"""The sections of a scenario file: traffic, pools (batching, resources), cluster, routing,
controller, metrics. `kisim.core.config.Scenario` puts them together and checks them against
each other; the env section is `kisim.core.env_section`, calibrations `kisim.core.devices`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from kisim.core.devices import NonNeg, Pos, StrictModel


class PatternSpec(StrictModel):
    """A load pattern by registry name, with parameters (see `kisim.core.patterns`)."""

    name: str = Field(description="Pattern name: constant, step, ramp, spike, periodic, ...")
    params: dict[str, Any] = Field(default_factory=dict, description="Overrides of its defaults.")

    @model_validator(mode="after")
    def _known(self) -> PatternSpec:
        from kisim.core.patterns import validate_pattern

        self.__dict__["params"] = validate_pattern(self.name, self.params)
        return self


class TrafficConfig(StrictModel):
    """Offered load: Locust-style closed-loop users, or open-loop arrivals."""

    mode: Literal["closed", "open"] = Field(
        "closed", description="closed: pattern level = users; open: pattern level = req/s."
    )
    pattern: PatternSpec = Field(description="How the level moves over time.")
    pattern_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-pattern parameter overrides used when `--pattern NAME` is chosen.",
    )
    wait_time_s: tuple[NonNeg, NonNeg] = Field(
        (0.5, 1.5), description="Locust `between(min, max)` think time of closed-loop users."
    )
    arrival: Literal["exponential", "deterministic"] = Field(
        "exponential", description="Open-loop inter-arrival distribution."
    )
    shape_tick_s: Pos = Field(1.0, description="How often the user count follows the pattern.")
    spawn_rate_users_s: NonNeg | None = Field(
        None,
        description="Locust `spawn_rate` (closed loop): users added at a shape tick start in "
        "groups of max(1, floor(rate)), one group every group/rate s, all of a group at once, "
        "first request on start. None or 0: new users start uniformly over the shape tick.",
    )

    @model_validator(mode="after")
    def _wait(self) -> TrafficConfig:
        if self.wait_time_s[0] > self.wait_time_s[1]:
            raise ValueError("wait_time_s: min is larger than max")
        return self


class BatchingConfig(StrictModel):
    """Triton's dynamic batcher (`dynamic_batching { ... }` in config.pbtxt)."""

    enabled: bool = Field(True, description="false = every request executes alone.")
    max_batch_size: int = Field(8, ge=1, description="config.pbtxt max_batch_size.")
    preferred_batch_sizes: list[int] = Field(
        default_factory=list, description="dynamic_batching.preferred_batch_size."
    )
    max_queue_delay_us: int = Field(0, ge=0, description="max_queue_delay_microseconds.")
    max_queue_size: int = Field(
        0, ge=0, description="default_queue_policy.max_queue_size; 0 = unbounded."
    )

    @model_validator(mode="after")
    def _sizes(self) -> BatchingConfig:
        if any(p < 1 or p > self.max_batch_size for p in self.preferred_batch_sizes):
            raise ValueError("preferred_batch_sizes must lie in 1..max_batch_size")
        return self


class ResourcesConfig(StrictModel):
    """Container resources; requests = limits (Guaranteed QoS), as the experiments used."""

    cpu: Pos = Field(2.0, description="CPU cores.")
    memory_gib: Pos = Field(4.0, description="Memory, GiB.")
    gpu: int = Field(0, ge=0, description="nvidia.com/gpu.")


class PoolConfig(StrictModel):
    """One Deployment of Triton replicas on one device class."""

    device: str = Field(description="Key into the calibration's `devices`.")
    replicas: int = Field(1, ge=0, description="Replicas at the start of a run.")
    min_replicas: int = Field(0, ge=0, description="Lower bound for any controller.")
    max_replicas: int = Field(8, ge=0, description="Upper bound for any controller.")
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    instances: int = Field(1, ge=1, description="instance_group.count: concurrent executions.")

    @model_validator(mode="after")
    def _bounds(self) -> PoolConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas is larger than max_replicas")
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError("replicas must lie in min_replicas..max_replicas")
        return self


class NodeConfig(StrictModel):
    """A group of identical nodes."""

    name: str
    count: int = Field(1, ge=1, description="How many nodes of this shape.")
    cpu: Pos = Field(description="Allocatable CPU cores.")
    memory_gib: Pos = Field(description="Allocatable memory, GiB.")
    gpus: int = Field(0, ge=0, description="Physical GPUs.")
    gpu_sharing: int = Field(
        1, ge=1, description="Time-slicing replicas per GPU (device plugin `replicas`)."
    )
    gpu_device: str | None = Field(
        None,
        description="Calibration device of its GPUs: GPU pods of other devices do not schedule "
        "here (a nodeSelector on the GPU product label); null = any GPU pod.",
    )


class ClusterConfig(StrictModel):
    nodes: list[NodeConfig] = Field(min_length=1)


class RoutingConfig(StrictModel):
    """The Kubernetes Service in front of every pool, plus kisim's placement knob.

    A placement is a traffic split between pools. By default (`gpu_share`) it sends a
    fraction of the requests to the GPU pools and the rest to the CPU pools, uniformly over
    the ready endpoints of each side (several GPU pools share the GPU side by endpoint
    count); `weights` instead gives every pool its own weight per placement. A pool with no
    ready endpoint gets nothing; the others share its traffic in proportion."""

    mode: Literal["random", "round_robin"] = Field(
        "random", description="random = kube-proxy iptables mode; round_robin = IPVS rr."
    )
    placement: str = Field(
        "balanced", description="Placement at the start: a key of `weights` (or `gpu_share`)."
    )
    gpu_share: dict[str, Annotated[float, Field(ge=0, le=1)] | None] = Field(
        default_factory=lambda: {"prefer-gpu": 0.8, "balanced": None, "prefer-cpu": 0.2},
        min_length=1,
        description="Per placement, the traffic fraction to the GPU pools (the rest to the CPU "
        "pools); null = by endpoint count over all pools.",
    )
    weights: dict[str, dict[str, NonNeg]] | None = Field(
        None,
        description="Per placement, a weight per pool (missing pools: 0), replacing `gpu_share`; "
        "traffic splits between the pools with ready endpoints in proportion.",
    )

    @property
    def placements(self) -> tuple[str, ...]:
        """The placements, in the order the `replicas` action numbers them."""
        return tuple(self.weights if self.weights is not None else self.gpu_share)

    @model_validator(mode="after")
    def _placement(self) -> RoutingConfig:
        if self.weights is not None and not self.weights:
            raise ValueError("weights: at least one placement")
        if self.placement not in self.placements:
            raise ValueError(f"placement: '{self.placement}' is not a placement "
                             f"(placements: {', '.join(self.placements)})")  # fmt: skip
        return self


class ScalingPolicy(StrictModel):
    type: Literal["Pods", "Percent"]
    value: int = Field(ge=1)
    period_s: int = Field(15, ge=1)


class HPAConfig(StrictModel):
    """HorizontalPodAutoscaler v2 on CPU utilisation; defaults are Kubernetes' own."""

    target_cpu_utilization: Annotated[float, Field(gt=0, le=1.0)] = Field(
        0.6, description="averageUtilization / 100."
    )
    pools: list[str] | None = Field(
        None, description="Pools that get an HPA (one each); null = every pool."
    )
    tolerance: NonNeg = Field(0.1, description="--horizontal-pod-autoscaler-tolerance.")
    sync_period_s: Pos = Field(15.0, description="--horizontal-pod-autoscaler-sync-period.")
    cpu_initialization_period_s: NonNeg = Field(300.0)
    initial_readiness_delay_s: NonNeg = Field(30.0)
    scale_up_stabilization_s: NonNeg = Field(0.0)
    scale_down_stabilization_s: NonNeg = Field(300.0)
    scale_up_policies: list[ScalingPolicy] = Field(
        default_factory=lambda: [
            ScalingPolicy(type="Pods", value=4, period_s=15),
            ScalingPolicy(type="Percent", value=100, period_s=15),
        ]
    )
    scale_up_select: Literal["Max", "Min", "Disabled"] = "Max"
    scale_down_policies: list[ScalingPolicy] = Field(
        default_factory=lambda: [ScalingPolicy(type="Percent", value=100, period_s=15)]
    )
    scale_down_select: Literal["Max", "Min", "Disabled"] = "Max"


class ControllerConfig(StrictModel):
    """What changes replica counts inside the cluster during a run."""

    name: str = Field("static", description="static | hpa | external (an agent via apply()).")
    hpa: HPAConfig = Field(default_factory=HPAConfig)

    @model_validator(mode="after")
    def _known(self) -> ControllerConfig:
        if self.name not in CONTROLLERS:
            raise ValueError(f"unknown policy '{self.name}' (known: {', '.join(CONTROLLERS)})")
        return self


CONTROLLERS: tuple[str, ...] = ("static", "hpa", "external")


class MetricsConfig(StrictModel):
    """How Prometheus and metrics-server see the cluster."""

    scrape_interval_s: Pos = Field(15.0, description="Prometheus scrape_interval.")
    rate_window_s: Pos = Field(60.0, description="Range of rate()/increase() in queries.")
    metrics_server_resolution_s: Pos = Field(
        15.0, description="metrics-server --metric-resolution."
    )
    latency_stats: Literal["auto", "sketch", "exact"] = Field(
        "auto",
        description="Per-request latency statistics: exact (every request kept) | sketch "
        "(streamed, quantiles within 0.5 %, memory flat in requests; kisim.core.sketch) | "
        "auto (exact up to 2 M estimated requests, sketch beyond).",
    )

"""Typed, versioned scenario and calibration files (``apiVersion: kisim/v1``).

A :class:`Scenario` plus a seed fully determines a twin run. Every field has a
description; unknown keys are errors, and every error names the file and the
dotted field path (``configs/x.yaml: traffic.pattern.name: unknown pattern 'z'``).
"""

from __future__ import annotations

import bisect
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from kisim.errors import ConfigError

API_VERSION = "kisim/v1"
POOLS: tuple[str, ...] = ("gpu", "cpu")
PLACEMENTS: tuple[str, ...] = ("prefer-gpu", "balanced", "prefer-cpu")

M = TypeVar("M", bound=BaseModel)
Pos = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- calibration


class Dist(_Model):
    """A positive multiplier with mean 1 (service-time noise, overhead noise)."""

    kind: Literal["deterministic", "exponential", "lognormal"] = Field(
        "lognormal", description="Distribution family; `exponential` has cv 1 by definition."
    )
    cv: NonNeg = Field(0.1, description="Coefficient of variation (lognormal only).")


class ServiceCurve(_Model):
    """Execution time of one batch of size b on the device as calibrated.

    ``table_ms`` (measured points, linearly interpolated, linearly extrapolated)
    wins over the affine form ``base_ms + per_item_ms * (b - 1)``.
    """

    base_ms: Pos = Field(description="Execution time of a batch of one, ms.")
    per_item_ms: NonNeg = Field(0.0, description="Extra time per additional batch item, ms.")
    table_ms: dict[int, Pos] | None = Field(None, description="Measured {batch size: ms} points.")
    noise: Dist = Field(default_factory=Dist, description="Multiplicative noise per batch.")

    def time_ms(self, b: int) -> float:
        """Mean execution time of a batch of `b` items, ms."""
        if not self.table_ms:
            return self.base_ms + self.per_item_ms * (b - 1)
        pts = sorted(self.table_ms.items())
        if len(pts) == 1:
            return max(pts[0][1] + self.per_item_ms * (b - pts[0][0]), 1e-6)
        i = min(max(bisect.bisect_left([p[0] for p in pts], b), 1), len(pts) - 1)
        (b0, t0), (b1, t1) = pts[i - 1], pts[i]
        return max(t0 + (t1 - t0) * (b - b0) / (b1 - b0), 1e-6)


class StartupCalibration(_Model):
    """Pod start-up phases after the scheduler binds the pod."""

    schedule_s: NonNeg = Field(0.2, description="Scheduling latency: create -> bound.")
    container_start_s: NonNeg = Field(2.0, description="Image present: sandbox + container start.")
    model_load_s: NonNeg = Field(8.0, description="Triton start + model load, mean.")
    model_load_cv: NonNeg = Field(0.2, description="Lognormal cv of the model-load time.")
    readiness_initial_delay_s: NonNeg = Field(
        5.0, description="readinessProbe.initialDelaySeconds."
    )
    readiness_period_s: Pos = Field(5.0, description="readinessProbe.periodSeconds.")
    termination_grace_s: NonNeg = Field(30.0, description="terminationGracePeriodSeconds.")


class DeviceCalibration(_Model):
    """Everything the twin needs to know about one device class serving the model."""

    kind: Literal["gpu", "cpu"] = Field(description="Accelerator class of the device.")
    description: str = Field("", description="Human-readable hardware and model description.")
    service: ServiceCurve = Field(description="Batch execution time at `reference_cores`.")
    reference_cores: Pos = Field(2.0, description="CPU cores the service curve was measured with.")
    core_scaling: NonNeg = Field(
        0.0,
        description="Exponent e: time x (reference_cores / effective cores)^e. 0 for GPUs. "
        "With `core_scaling_per_doubling`, the exponent of a batch of one.",
    )
    core_scaling_per_doubling: float = Field(
        0.0,
        description="Batch-size dependence of the core-scaling exponent: a batch of b items "
        "uses e(b) = max(core_scaling + this x log2(b), 0) (a fixed serial part per execution "
        "makes small batches gain less from more cores). 0 = one exponent for every size.",
    )
    sharing_penalty: NonNeg = Field(
        1.0, description="GPU time-slicing: slow-down per extra busy pod on the same GPU."
    )
    overhead_ms: NonNeg = Field(
        0.0, description="Per-request time outside queue and compute (HTTP, (de)serialisation)."
    )
    overhead_noise: Dist = Field(default_factory=Dist, description="Noise of `overhead_ms`.")
    host_sharing_penalty: NonNeg = Field(
        0.0,
        description="CPU replicas sharing one node's cores (no CPU limits, e.g. a single host): "
        "slow-down per execution of another replica busy on the same node. 0 = replicas "
        "never slow each other (CPU limits on dedicated cores).",
    )
    batch_merge_ms: NonNeg = Field(
        0.0,
        description="Dynamic batching: extra execution time per request merged into a batch "
        "beyond the first, ms (the backend gathers the separate requests' inputs and splits the "
        "outputs; an isolated batch of b items is one request and does not pay it). "
        "0 = batches cost the curve alone.",
    )
    overhead_busy_factor: NonNeg = Field(
        0.0,
        description="Overhead contention: a request that completes while its replica still has "
        "work (batches executing or queued, as a share of its instances) takes overhead x "
        "(1 + this x share); the front end and the client share the replica's cores. "
        "0 = constant overhead.",
    )
    cpu_per_request_ms: NonNeg = Field(
        0.0, description="CPU core-ms the server front end spends per request."
    )
    memory_base_gib: NonNeg = Field(0.8, description="Resident memory of an idle ready pod.")
    memory_per_item_gib: NonNeg = Field(0.0, description="Extra memory per in-flight batch item.")
    startup: StartupCalibration = Field(default_factory=StartupCalibration)

    def core_exponent(self, b: int) -> float:
        """Core-scaling exponent of a batch of `b` items (`core_scaling` when the
        per-doubling term is 0, exactly)."""
        if self.core_scaling_per_doubling == 0.0:
            return self.core_scaling
        return max(self.core_scaling + self.core_scaling_per_doubling * math.log2(b), 0.0)


class Calibration(_Model):
    """A set of device models with a statement of where every number came from."""

    apiVersion: Literal["kisim/v1"] = API_VERSION
    kind: Literal["Calibration"] = "Calibration"
    name: str
    provenance: str = Field(min_length=1, description="Where every figure came from.")
    devices: dict[str, DeviceCalibration]


# --------------------------------------------------------------------------- scenario


class PatternSpec(_Model):
    """A load pattern by registry name, with parameters (see `kisim.patterns`)."""

    name: str = Field(description="Pattern name: constant, step, ramp, spike, periodic, ...")
    params: dict[str, Any] = Field(default_factory=dict, description="Overrides of its defaults.")

    @model_validator(mode="after")
    def _known(self) -> PatternSpec:
        from kisim.patterns import validate_pattern

        self.__dict__["params"] = validate_pattern(self.name, self.params)
        return self


class TrafficConfig(_Model):
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


class BatchingConfig(_Model):
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


class ResourcesConfig(_Model):
    """Container resources; requests = limits (Guaranteed QoS), as the experiments used."""

    cpu: Pos = Field(2.0, description="CPU cores.")
    memory_gib: Pos = Field(4.0, description="Memory, GiB.")
    gpu: int = Field(0, ge=0, description="nvidia.com/gpu.")


class PoolConfig(_Model):
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


class NodeConfig(_Model):
    """A group of identical nodes."""

    name: str
    count: int = Field(1, ge=1, description="How many nodes of this shape.")
    cpu: Pos = Field(description="Allocatable CPU cores.")
    memory_gib: Pos = Field(description="Allocatable memory, GiB.")
    gpus: int = Field(0, ge=0, description="Physical GPUs.")
    gpu_sharing: int = Field(
        1, ge=1, description="Time-slicing replicas per GPU (device plugin `replicas`)."
    )


class ClusterConfig(_Model):
    nodes: list[NodeConfig] = Field(min_length=1)


class RoutingConfig(_Model):
    """The Kubernetes Service in front of both pools, plus kisim's placement knob."""

    mode: Literal["random", "round_robin"] = Field(
        "random", description="random = kube-proxy iptables mode; round_robin = IPVS rr."
    )
    placement: Literal["prefer-gpu", "balanced", "prefer-cpu"] = "balanced"
    gpu_share: dict[str, float | None] = Field(
        default_factory=lambda: {"prefer-gpu": 0.8, "balanced": None, "prefer-cpu": 0.2},
        description="Traffic fraction to the GPU pool per placement; null = by endpoint count.",
    )


class ScalingPolicy(_Model):
    type: Literal["Pods", "Percent"]
    value: int = Field(ge=1)
    period_s: int = Field(15, ge=1)


class HPAConfig(_Model):
    """HorizontalPodAutoscaler v2 on CPU utilisation; defaults are Kubernetes' own."""

    target_cpu_utilization: Annotated[float, Field(gt=0, le=1.0)] = Field(
        0.6, description="averageUtilization / 100."
    )
    pools: list[Literal["gpu", "cpu"]] = Field(
        default_factory=lambda: ["gpu", "cpu"], description="Pools that get an HPA."
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


class ControllerConfig(_Model):
    """What changes replica counts inside the cluster during a run."""

    name: str = Field("static", description="static | hpa | external (an agent via apply()).")
    hpa: HPAConfig = Field(default_factory=HPAConfig)

    @model_validator(mode="after")
    def _known(self) -> ControllerConfig:
        if self.name not in CONTROLLERS:
            raise ValueError(f"unknown policy '{self.name}' (known: {', '.join(CONTROLLERS)})")
        return self


CONTROLLERS: tuple[str, ...] = ("static", "hpa", "external")


class MetricsConfig(_Model):
    """How Prometheus and metrics-server see the cluster."""

    scrape_interval_s: Pos = Field(15.0, description="Prometheus scrape_interval.")
    rate_window_s: Pos = Field(60.0, description="Range of rate()/increase() in queries.")
    metrics_server_resolution_s: Pos = Field(
        15.0, description="metrics-server --metric-resolution."
    )


class ResourceActionConfig(_Model):
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


class HPATargetActionConfig(_Model):
    """Steps and bounds of the `hpa-target` action preset."""

    step: Pos = Field(0.05, description="Change of the target utilisation per action rung.")
    min: Annotated[float, Field(gt=0, le=1.0)] = Field(0.2, description="Lowest target.")
    max: Annotated[float, Field(gt=0, le=1.0)] = Field(0.95, description="Highest target.")

    @model_validator(mode="after")
    def _range(self) -> HPATargetActionConfig:
        if self.min > self.max:
            raise ValueError("min is larger than max")
        return self


class EnvConfig(_Model):
    """The Gymnasium view (used by `kisim.env`; see docs/environment.md)."""

    step_s: Pos = Field(30.0, description="Simulated seconds per agent step.")
    observation: str = Field("default", description="Observation preset: default | extended.")
    action: str = Field(
        "replicas", description="Action preset: replicas | resources | hpa-target | none."
    )
    reward: str = Field("weighted", description="Reward preset: weighted | qos.")
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
    prices: dict[Literal["gpu", "cpu"], NonNeg] = Field(
        default_factory=lambda: {"gpu": 4.0, "cpu": 1.0},
        description="Relative price of one replica-second per pool (resource efficiency).",
    )
    resources: ResourceActionConfig = Field(default_factory=ResourceActionConfig)
    hpa_target: HPATargetActionConfig = Field(default_factory=HPATargetActionConfig)

    @field_validator("observation", "action", "reward")
    @classmethod
    def _preset(cls, name: str, info: ValidationInfo) -> str:
        from kisim.actions import ACTIONS
        from kisim.observation import OBSERVATIONS
        from kisim.rewards import REWARDS

        regs = {"observation": OBSERVATIONS, "action": ACTIONS, "reward": REWARDS}
        reg = regs[str(info.field_name)]
        if name not in reg:
            raise ValueError(f"unknown preset '{name}' (known: {', '.join(reg)})")
        return name

    @field_validator("reward_weights")
    @classmethod
    def _weights(cls, weights: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        from kisim.rewards import REWARDS

        preset = REWARDS.get(info.data.get("reward", ""))
        if preset is not None:
            for k in weights:
                if k not in preset.default_weights:
                    raise ValueError(f"'{k}' is not a term of '{preset.name}' "
                                     f"(terms: {', '.join(preset.default_weights)})")  # fmt: skip
        return weights


class Scenario(_Model):
    """One run: cluster, service, calibration, traffic, controller, SLO, duration."""

    apiVersion: Literal["kisim/v1"] = API_VERSION
    kind: Literal["Scenario"] = "Scenario"
    name: str
    description: str = ""
    seed: int = Field(0, ge=0, description="Default seed; `--seed` overrides.")
    duration_s: Pos = Field(600.0, description="Simulated seconds.")
    window_s: Pos = Field(15.0, description="Timeline window length.")
    slo_ms: Pos = Field(100.0, description="A request slower than this violates the SLO.")
    traffic: TrafficConfig
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    pools: dict[Literal["gpu", "cpu"], PoolConfig] = Field(min_length=1)
    cluster: ClusterConfig
    controller: ControllerConfig = Field(default_factory=ControllerConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    calibration: Calibration

    @model_validator(mode="after")
    def _devices(self) -> Scenario:
        for pool, cfg in self.pools.items():
            dev = self.calibration.devices.get(cfg.device)
            if dev is None:
                raise ValueError(f"pools.{pool}.device: '{cfg.device}' is not in the calibration")
            if dev.kind == "gpu" and cfg.resources.gpu < 1:
                raise ValueError(f"pools.{pool}.resources.gpu: a GPU device needs gpu >= 1")
        return self

    def hpa_pools(self) -> list[str]:
        """The pools that get an HPA: listed in `controller.hpa.pools`, present, and able to
        run a pod (a pool at max_replicas 0 has, as on Kubernetes, nothing to autoscale)."""
        return [p for p in self.controller.hpa.pools if p in self.pools
                and self.pools[p].max_replicas > 0]  # fmt: skip


# --------------------------------------------------------------------------- loading


def _fmt_errors(path: Path | str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-after"))
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: {loc or '(top level)'}: {msg}{more}"


def validated(model: type[M], data: Any, source: Path | str) -> M:
    """`data` validated as `model`, or a ConfigError naming `source` and the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_fmt_errors(source, e)) from None


def load_model(model: type[M], path: Path | str) -> M:
    """A YAML file validated as `model`; errors name the file and the field."""
    return validated(model, read_yaml(path), path)


def read_yaml(path: Path | str) -> dict[str, Any]:
    """Read a YAML mapping, or raise ConfigError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}:{where} not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    return data


def load_calibration(path: Path | str) -> Calibration:
    return load_model(Calibration, path)


def load_scenario(path: Path | str, **overrides: Any) -> Scenario:
    """Load a scenario; `calibration:` may be a path relative to the scenario file.

    `extends: other.yaml` deep-merges this file over another scenario (mappings
    merge, everything else replaces). ``overrides`` are dotted paths
    (``{"traffic.pattern.name": "spike"}``) applied before validation, so CLI
    flags are validated exactly like file contents.
    """
    p = Path(path)
    data = _read_scenario_data(p, seen=())
    cal = data.get("calibration")
    if isinstance(cal, str):
        cal_path = Path(cal)
        data["calibration"] = read_yaml(cal_path)
        validated(Calibration, data["calibration"], cal_path)
    for dotted, value in overrides.items():
        _set_dotted(data, dotted, value)
    return validated(Scenario, data, p)


def _read_scenario_data(p: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """The file's mapping with `extends` merged in and the calibration path made absolute."""
    if p.resolve() in seen:
        raise ConfigError(f"{p}: extends: cycle through {' -> '.join(map(str, seen))}")
    data = read_yaml(p)
    cal = data.get("calibration")
    if isinstance(cal, str) and not Path(cal).is_absolute():
        data["calibration"] = str((p.parent / cal).resolve())
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{p}: extends: expected a file path")
    base_path = Path(base) if Path(base).is_absolute() else p.parent / base
    return _merge(_read_scenario_data(base_path, (*seen, p.resolve())), data)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    cur = data
    for k in keys[:-1]:
        nxt = cur.get(k)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[k] = nxt
        cur = nxt
    cur[keys[-1]] = value


def with_pattern(scenario: Scenario, name: str) -> Scenario:
    """The scenario with its load pattern replaced by `name` (params from `pattern_params`)."""
    data = scenario.model_dump(mode="json")
    data["traffic"]["pattern"] = {
        "name": name,
        "params": scenario.traffic.pattern_params.get(name, {}),
    }
    return validated(Scenario, data, f"--pattern {name}")


def override(scenario: Scenario, source: str, **dotted: Any) -> Scenario:
    """A validated copy with dotted-path fields replaced; errors name `source`."""
    data = scenario.model_dump(mode="json")
    for k, v in dotted.items():
        _set_dotted(data, k, v)
    return validated(Scenario, data, source)


def resolved_json(scenario: Scenario) -> str:
    """The fully resolved scenario (calibration inline) as written to config.json."""
    return json.dumps(scenario.model_dump(mode="json"), indent=2, sort_keys=True)

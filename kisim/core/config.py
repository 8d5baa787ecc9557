"""Typed, versioned scenario files (``apiVersion: kisim/v1``); calibrations in `kisim.core.devices`.

A :class:`Scenario` plus a seed fully determines a twin run. Every field has a
description; unknown keys are errors, and every error names the file and the
dotted field path (``configs/x.yaml: traffic.pattern.name: unknown pattern 'z'``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from kisim.core.devices import API_VERSION, NonNeg, Pos, StrictModel
from kisim.core.devices import Calibration as Calibration
from kisim.core.devices import DeviceCalibration as DeviceCalibration
from kisim.core.devices import Dist as Dist
from kisim.core.devices import ServiceCurve as ServiceCurve
from kisim.core.devices import StartupCalibration as StartupCalibration
from kisim.core.env_section import EnvConfig as EnvConfig
from kisim.core.env_section import HPATargetActionConfig as HPATargetActionConfig
from kisim.core.env_section import ResourceActionConfig as ResourceActionConfig
from kisim.core.errors import ConfigError
from kisim.core.faults import FaultsConfig, check_faults
from kisim.core.platform import PlatformConfig
from kisim.core.prices import Prices

SEED_POOLS: tuple[str, ...] = ("gpu", "cpu")
"""The pool names of the seed layout (one GPU pool, one CPU pool): the default observation and
action presets' two-pool form, and the two Deployments of the real backends (`bridge`)."""
PLACEMENTS: tuple[str, ...] = ("prefer-gpu", "balanced", "prefer-cpu")
"""The default placements (keys of `routing.gpu_share`)."""
POOL_NAME = re.compile(r"^[a-z][a-z0-9]*$")
"""Pool names: lower-case letters and digits, starting with a letter (a Python identifier, a
DNS label, and unambiguous in ``<pool>_<field>`` columns)."""

M = TypeVar("M", bound=BaseModel)


# --------------------------------------------------------------------------- scenario


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


class Scenario(StrictModel):
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
    pools: dict[str, PoolConfig] = Field(
        min_length=1,
        description="Named pools (`gpu`, `a10g`, `cpu`, ...): lower-case letters and digits.",
    )
    cluster: ClusterConfig
    controller: ControllerConfig = Field(default_factory=ControllerConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    prices: Prices = Field(
        default_factory=Prices,
        description="Money per hour of what pods reserve (GPUs by device, cores, memory); "
        "defaults: AWS on-demand list prices (kisim.core.prices).",
    )
    calibration: Calibration
    platform: PlatformConfig | None = Field(
        None, description="The shared ML platform around the service (kisim.core.platform, "
        "twin.platform); null = the single-service twin only.",
    )
    faults: FaultsConfig = Field(
        default_factory=FaultsConfig,
        exclude_if=lambda f: not f.active,  # fault-free scenarios dump (and fingerprint) as before
        description="Fault events, their randomisation and upstream timings (kisim.core.faults).",
    )
    _source: str = PrivateAttr("scenario")

    @property
    def source(self) -> str:
        """Where this scenario came from (a file, or the flag that changed it), for errors."""
        return self._source

    @model_validator(mode="after")
    def _devices(self) -> Scenario:
        for pool, cfg in self.pools.items():
            if not POOL_NAME.match(pool):
                raise ValueError(f"pools.{pool}: a pool name is lower-case letters and digits, "
                                 "starting with a letter")  # fmt: skip
            dev = self.calibration.devices.get(cfg.device)
            if dev is None:
                raise ValueError(f"pools.{pool}.device: '{cfg.device}' is not in the calibration")
            if dev.kind == "gpu" and cfg.resources.gpu < 1:
                raise ValueError(f"pools.{pool}.resources.gpu: a GPU device needs gpu >= 1")
        for i, node in enumerate(self.cluster.nodes):
            dev = node.gpu_device
            if dev is not None and (dev not in self.calibration.devices
                                    or self.calibration.devices[dev].kind != "gpu"):  # fmt: skip
                raise ValueError(f"cluster.nodes.{i}.gpu_device: '{dev}' is not a GPU device "
                                 "of the calibration")  # fmt: skip
        if self.platform is not None:
            self.platform.check_devices(self.calibration)
        keyed = {"controller.hpa.pools": self.controller.hpa.pools or [],
                 "env.prices": list(self.env.prices)}  # fmt: skip
        for placement, ws in (self.routing.weights or {}).items():
            keyed[f"routing.weights.{placement}"] = list(ws)
        for field, names in keyed.items():
            for name in names:
                if name not in self.pools:
                    raise ValueError(f"{field}: '{name}' is not a pool "
                                     f"(pools: {', '.join(self.pools)})")  # fmt: skip
        check_faults(self)
        return self

    @property
    def pool_names(self) -> tuple[str, ...]:
        """The pools in their canonical order: GPU pools first, then CPU pools, each in the
        order of the file. Observations, actions, Windows and reports follow it, so the seed
        layout is always (gpu, cpu) whatever order a file lists them in."""
        kinds = {p: self.pool_kind(p) for p in self.pools}
        return tuple([p for p in self.pools if kinds[p] == "gpu"]
                     + [p for p in self.pools if kinds[p] != "gpu"])  # fmt: skip

    def pool_kind(self, pool: str) -> str:
        """``gpu`` or ``cpu``: the kind of the pool's device in the calibration."""
        return self.calibration.devices[self.pools[pool].device].kind

    @property
    def seed_layout(self) -> bool:
        """Whether the pools are the seed layout's: named ``gpu`` and ``cpu`` (either or both)."""
        return set(self.pools) <= set(SEED_POOLS)

    def pool_price(self, pool: str) -> float:
        """Relative price of one replica-second of `pool` (`env.prices`; else by kind:
        GPU 4, CPU 1)."""
        price = self.env.prices.get(pool)
        if price is not None:
            return float(price)
        return DEFAULT_PRICE[self.pool_kind(pool)]

    def hpa_pools(self) -> list[str]:
        """The pools that get an HPA: listed in `controller.hpa.pools` (all when null), and
        able to run a pod (a pool at max_replicas 0 has, as on Kubernetes, nothing to
        autoscale). In `pool_names` order."""
        listed = self.controller.hpa.pools
        return [p for p in self.pool_names if (listed is None or p in listed)
                and self.pools[p].max_replicas > 0]  # fmt: skip


DEFAULT_PRICE: dict[str, float] = {"gpu": 4.0, "cpu": 1.0}
"""Relative price of a replica-second by device kind when `env.prices` names no price."""


# --------------------------------------------------------------------------- loading


def _fmt_errors(path: Path | str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) if str(p).isprintable() else repr(str(p))  # one line, even for
                   for p in first["loc"] if not str(p).startswith("function-after"))  # odd keys
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: {loc or '(top level)'}: {msg}{more}"


def validated(model: type[M], data: Any, source: Path | str) -> M:
    """`data` validated as `model`, or a ConfigError naming `source` and the first bad field."""
    try:
        m = model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_fmt_errors(source, e)) from None
    if isinstance(m, Scenario):
        m._source = str(source)
    return m


def load_model(model: type[M], path: Path | str) -> M:
    """A YAML file validated as `model`; errors name the file and the field."""
    return validated(model, read_yaml(path), path)


def read_yaml(path: Path | str) -> dict[str, Any]:
    """Read a YAML mapping, or raise ConfigError naming the file."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory (expected a YAML file)")
    if not p.is_file():
        raise ConfigError(f"{p}: no such file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ConfigError(f"{p}: not a text (UTF-8) YAML file") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read ({e.strerror or e})") from None
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
    _absolute_pattern_files(data, p)
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{p}: extends: expected a file path")
    base_path = Path(base) if Path(base).is_absolute() else p.parent / base
    return _merge(_read_scenario_data(base_path, (*seen, p.resolve())), data)


FILE_PARAMS: tuple[str, ...] = ("csv",)
"""Pattern parameters that name a file: relative paths are relative to the scenario file."""


def _absolute_pattern_files(data: dict[str, Any], p: Path) -> None:
    """Make the files named by `traffic.pattern.params` and `traffic.pattern_params.*`
    absolute, relative to the scenario file `p` that names them (as `calibration:` is)."""
    traffic = data.get("traffic")
    if not isinstance(traffic, dict):
        return
    pattern = traffic.get("pattern")
    groups = [pattern.get("params") if isinstance(pattern, dict) else None]
    pp = traffic.get("pattern_params")
    groups += list(pp.values()) if isinstance(pp, dict) else []
    for params in groups:
        if not isinstance(params, dict):
            continue
        for key in FILE_PARAMS:
            f = params.get(key)
            if isinstance(f, str) and f and not Path(f).is_absolute():
                params[key] = str((p.parent / f).resolve())


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
    own = scenario.traffic.pattern
    default = own.params if name == own.name else {}  # the scenario's own pattern keeps its
    data["traffic"]["pattern"] = {                    # parameters unless pattern_params says
        "name": name,
        "params": scenario.traffic.pattern_params.get(name, default),
    }
    return validated(Scenario, data, f"--pattern {name}")


def override(scenario: Scenario, source: str, **dotted: Any) -> Scenario:
    """A validated copy with dotted-path fields replaced; errors name `source`."""
    data = scenario.model_dump(mode="json")
    for k, v in dotted.items():
        _set_dotted(data, k, v)
    return validated(Scenario, data, source)


def scenario_data(scenario: Scenario) -> dict[str, Any]:
    """The resolved scenario as JSON data in its own key order, to rebuild it from
    (`Scenario.model_validate`) in another process or run. `resolved_json` sorts keys (a
    stable text to fingerprint) and so loses the order of ``routing.gpu_share`` /
    ``weights``, which numbers the placements of the `replicas` action: a policy trained
    on the file's order would act on the sorted one."""
    return json.loads(json.dumps(scenario.model_dump(mode="json")))


def resolved_json(scenario: Scenario) -> str:
    """The fully resolved scenario (calibration inline) as written to config.json."""
    data = scenario.model_dump(mode="json")
    if data.get("platform") is None:  # a single-service scenario resolves (and fingerprints)
        data.pop("platform", None)    # exactly as before the platform section existed
    for dev in ((data.get("calibration") or {}).get("devices") or {}).values():
        if dev.get("idle_slowdown") == 0.0:  # likewise a device without the idle-gap term:
            dev.pop("idle_slowdown", None)    # the benchmark's stored runs stay reusable
            dev.pop("idle_tau_ms", None)
    if tuple(data["env"]["replica_steps"]) == EnvConfig.model_fields["replica_steps"].default:
        data["env"].pop("replica_steps")  # the seed's -2..+2: as before the field existed
    return json.dumps(data, indent=2, sort_keys=True)

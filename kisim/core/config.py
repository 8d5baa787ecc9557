"""Typed, versioned scenario files (``apiVersion: kisim/v1``): the `Scenario` and how files
load; its sections in `kisim.core.sections` (re-exported here), calibrations in
`kisim.core.devices`.

A :class:`Scenario` plus a seed fully determines a twin run. Every field has a
description; unknown keys are errors, and every error names the file and the
dotted field path (``configs/x.yaml: traffic.pattern.name: unknown pattern 'z'``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from kisim.core.devices import API_VERSION, Pos, StrictModel
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
from kisim.core.sections import BatchingConfig as BatchingConfig
from kisim.core.sections import ClusterConfig as ClusterConfig
from kisim.core.sections import ControllerConfig as ControllerConfig
from kisim.core.sections import HPAConfig as HPAConfig
from kisim.core.sections import MetricsConfig as MetricsConfig
from kisim.core.sections import NodeConfig as NodeConfig
from kisim.core.sections import PatternSpec as PatternSpec
from kisim.core.sections import PoolConfig as PoolConfig
from kisim.core.sections import ResourcesConfig as ResourcesConfig
from kisim.core.sections import RoutingConfig as RoutingConfig
from kisim.core.sections import ScalingPolicy as ScalingPolicy
from kisim.core.sections import TrafficConfig as TrafficConfig

SEED_POOLS: tuple[str, ...] = ("gpu", "cpu")
"""The pool names of the seed layout (one GPU pool, one CPU pool): the default observation and
action presets' two-pool form, and the two Deployments of the real backends (`bridge`)."""
PLACEMENTS: tuple[str, ...] = ("prefer-gpu", "balanced", "prefer-cpu")
"""The default placements (keys of `routing.gpu_share`)."""
POOL_NAME = re.compile(r"^[a-z][a-z0-9]*$")
"""Pool names: lower-case letters and digits, starting with a letter (a Python identifier, a
DNS label, and unambiguous in ``<pool>_<field>`` columns)."""

M = TypeVar("M", bound=BaseModel)


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
    data = read_extended(p, _absolute_scenario_paths)
    cal = data.get("calibration")
    if isinstance(cal, str):
        cal_path = Path(cal)
        data["calibration"] = read_yaml(cal_path)
        validated(Calibration, data["calibration"], cal_path)
    for dotted, value in overrides.items():
        set_dotted(data, dotted, value)
    return validated(Scenario, data, p)


def read_extended(p: Path, prepare: Callable[[dict[str, Any], Path], None] | None = None,
                  seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The YAML mapping of `p` deep-merged over the file its `extends:` names (a path relative
    to `p`), recursively: mappings merge, everything else replaces. `prepare(data, file)` runs
    on each file's own mapping first (e.g. to resolve the paths it names against its folder)."""
    if p.resolve() in seen:
        raise ConfigError(f"{p}: extends: cycle through {' -> '.join(map(str, seen))}")
    data = read_yaml(p)
    if prepare is not None:
        prepare(data, p)
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{p}: extends: expected a file path")
    base_path = Path(base) if Path(base).is_absolute() else p.parent / base
    return _merge(read_extended(base_path, prepare, (*seen, p.resolve())), data)


def _absolute_scenario_paths(data: dict[str, Any], p: Path) -> None:
    """Make `calibration:` and the pattern's files absolute, relative to the file naming them."""
    cal = data.get("calibration")
    if isinstance(cal, str) and not Path(cal).is_absolute():
        data["calibration"] = str((p.parent / cal).resolve())
    _absolute_pattern_files(data, p)


FILE_PARAMS: tuple[str, ...] = ("csv",)
"""Pattern parameters that name a file: relative paths are relative to the scenario file."""


def _pattern_files(data: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(params, key) of each file named in `traffic.pattern.params` and
    `traffic.pattern_params.*` of scenario data (raw or dumped)."""
    traffic = data.get("traffic")
    if not isinstance(traffic, dict):
        return []
    pattern = traffic.get("pattern")
    groups = [pattern.get("params") if isinstance(pattern, dict) else None]
    pp = traffic.get("pattern_params")
    groups += list(pp.values()) if isinstance(pp, dict) else []
    return [(params, key) for params in groups if isinstance(params, dict)
            for key in FILE_PARAMS if isinstance(params.get(key), str) and params[key]]


def _absolute_pattern_files(data: dict[str, Any], p: Path) -> None:
    """Make the files named by the pattern parameters absolute, relative to the scenario
    file `p` that names them (as `calibration:` is)."""
    for params, key in _pattern_files(data):
        if not Path(params[key]).is_absolute():
            params[key] = str((p.parent / params[key]).resolve())


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
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
        set_dotted(data, k, v)
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
    if data["env"].get("autoscaler") is None:
        data["env"].pop("autoscaler", None)  # likewise a scenario without a min-scale autoscaler
    return json.dumps(data, indent=2, sort_keys=True)


def fingerprint_text(scenario: Scenario) -> str:
    """`resolved_json` with every file a pattern names (absolute once resolved) replaced by
    the sha256 of its bytes: the text the stored runs' fingerprints hash, so that a scenario
    fingerprints the same from any checkout and differently once its CSV changes."""
    text = resolved_json(scenario)
    data = json.loads(text)
    files = _pattern_files(data)
    if not files:
        return text  # a scenario without files: the text (and fingerprint) as it always was
    for params, k in files:
        params[k] = "sha256:" + hashlib.sha256(Path(params[k]).read_bytes()).hexdigest()
    return json.dumps(data, indent=2, sort_keys=True)


def scenario_fingerprint(scenario: Scenario, salt: str = "") -> str:
    """sha256 of `fingerprint_text` (+ `salt`, which keeps e.g. twin and real runs apart)."""
    return hashlib.sha256((fingerprint_text(scenario) + salt).encode()).hexdigest()

"""`manifest.yaml` of a trace bundle: what was recorded (pools, batching, users schedule,
hardware, Triton) as a typed model; errors name the line, the column and the dotted key."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from calibration.locate import where, yaml_position
from kisim.core.config import BatchingConfig
from kisim.core.errors import TraceError

M = TypeVar("M", bound=BaseModel)


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelInfo(_M):
    name: str
    format: str = ""
    input_shape: list[int] = Field(default_factory=list)


class Hardware(_M):
    description: str = ""
    cpu_model: str | None = None
    gpu_model: str | None = None
    # cores of the whole machine the replicas ran on (informational: provenance and the
    # report; what a replica computes with is its pool's `threads_per_instance`)
    host_cores: float | None = Field(None, gt=0)


class TritonInfo(_M):
    version: str = ""
    backend: str = ""


class BundleResources(_M):
    cpu: float = Field(gt=0)
    memory_gib: float = Field(4.0, gt=0)
    gpu: int = Field(0, ge=0)


class BundlePool(_M):
    device: Literal["cpu", "gpu"]
    replicas: int = Field(ge=1)
    instances: int = Field(1, ge=1)
    resources: BundleResources
    batching: BatchingConfig
    # intra-op threads of one model instance (ONNX Runtime `intra_op_num_threads`, torch
    # `set_num_threads`); None = as many as the replica's cores (`resources.cpu`), which is
    # what `kisim record` runs (threads = cores / instances)
    threads_per_instance: int | None = Field(None, ge=1)

    @property
    def compute_cores(self) -> float:
        """Cores the replica's instances compute with: `threads_per_instance` x instances,
        at most `resources.cpu`; `resources.cpu` when the threads are not given."""
        if self.threads_per_instance is None:
            return self.resources.cpu
        return min(self.resources.cpu, float(self.threads_per_instance * self.instances))


class BundleRouting(_M):
    mode: Literal["random", "round_robin"] = "random"
    placement: Literal["prefer-gpu", "balanced", "prefer-cpu"] = "balanced"


class SchedulePoint(_M):
    t_s: float = Field(ge=0)
    users: float | None = Field(None, ge=0)
    rate: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one(self) -> SchedulePoint:
        if (self.users is None) == (self.rate is None):
            raise ValueError("give exactly one of users (closed loop) or rate (open loop)")
        return self

    @property
    def level(self) -> float:
        return float(self.users if self.users is not None else self.rate)  # type: ignore[arg-type]


class BundleTraffic(_M):
    mode: Literal["closed", "open"] = "closed"
    wait_time_s: tuple[float, float] = (0.5, 1.5)
    schedule: list[SchedulePoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> BundleTraffic:
        if self.wait_time_s[0] < 0 or self.wait_time_s[0] > self.wait_time_s[1]:
            raise ValueError("wait_time_s: need 0 <= min <= max")
        ts = [p.t_s for p in self.schedule]
        if any(b <= a for a, b in zip(ts, ts[1:], strict=False)):
            raise ValueError("schedule: t_s must increase")
        key = "users" if self.mode == "closed" else "rate"
        if any(getattr(p, key) is None for p in self.schedule):
            raise ValueError(f"schedule: a {self.mode}-loop schedule gives `{key}` in every row")
        return self


class Manifest(_M):
    apiVersion: Literal["kisim/v1"]
    kind: Literal["TraceBundle"]
    name: str = Field(min_length=1)
    recorded_at: str
    backend: Literal["local", "kubernetes"]
    start_unix_s: float
    end_unix_s: float
    model: ModelInfo
    hardware: Hardware = Field(default_factory=Hardware)
    triton: TritonInfo = Field(default_factory=TritonInfo)
    pools: dict[Literal["gpu", "cpu"], BundlePool] = Field(min_length=1)
    routing: BundleRouting = Field(default_factory=BundleRouting)
    traffic: BundleTraffic

    @field_validator("recorded_at", mode="before")
    @classmethod
    def _date(cls, v: Any) -> Any:
        return v.isoformat() if isinstance(v, datetime) else v

    @model_validator(mode="after")
    def _span(self) -> Manifest:
        if not self.end_unix_s > self.start_unix_s:
            raise ValueError("end_unix_s must be after start_unix_s")
        return self

    @property
    def duration_s(self) -> float:
        return self.end_unix_s - self.start_unix_s


def read_manifest(path: Path, warnings: list[str] | None = None) -> Manifest:
    """The manifest, validated; every problem reported at once (file, line, column, dotted
    key), unknown keys dropped with a warning in `warnings` (an error without it)."""
    if not path.is_file():
        raise TraceError(f"{path}: missing (every bundle has a manifest.yaml)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TraceError(f"{path}: not a text (UTF-8) file") from None
    data = load_yaml_mapping(path, text)
    return validate_all(Manifest, data, text, path, warnings)


def load_yaml_mapping(path: Path, text: str) -> dict[str, Any]:
    """A YAML file's top-level mapping; `TraceError` with line and column when it is not."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        pos = (mark.line + 1, mark.column + 1) if mark else None
        raise TraceError(
            f"{where(path, pos)}: not valid YAML ({getattr(e, 'problem', e)})"
        ) from None
    if not isinstance(data, dict):
        raise TraceError(f"{path}: expected a mapping at the top level")
    return data


def _drop(data: Any, loc: tuple[Any, ...]) -> None:
    node = data
    for key in loc[:-1]:
        node = node[key]
    node.pop(loc[-1], None)


def validate_all(
    model: type[M], data: dict[str, Any], text: str, path: Path, warnings: list[str] | None
) -> M:
    """`model.model_validate(data)` with every error of the file in one `TraceError`, one
    line each (``file: line L, column C: dotted.key: message``). With `warnings`, keys the
    format does not have are warnings (and ignored), not errors."""
    import copy

    data = copy.deepcopy(data)
    unknown: list[str] = []
    for _ in range(50):  # each pass drops the unknown keys pydantic named
        try:
            obj = model.model_validate(data)
            break
        except ValidationError as e:
            errs = e.errors()
            extra = [x for x in errs if x["type"] == "extra_forbidden"]
            if warnings is None or not extra:
                raise TraceError(_all_errors(path, text, errs)) from None
            for x in extra:
                loc = tuple(p for p in x["loc"] if not str(p).startswith("function-after"))
                unknown.append(
                    f"{where(path, yaml_position(text, loc))}: {'.'.join(map(str, loc))}: "
                    "unknown key, ignored (docs/bundle-format.md lists the keys)"
                )
                _drop(data, loc)
            if len(extra) < len(errs):
                rest = [x for x in errs if x["type"] != "extra_forbidden"]
                raise TraceError(_all_errors(path, text, rest)) from None
    else:  # pragma: no cover - a model that keeps naming new extra keys
        raise TraceError(f"{path}: could not be read")
    if warnings is not None:
        warnings.extend(unknown)
    return obj


def _all_errors(path: Path, text: str, errs: list[Any]) -> str:
    lines = []
    for x in errs:
        loc = [p for p in x["loc"] if not str(p).startswith("function-after")]
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        msg = x["msg"].removeprefix("Value error, ")
        if x["type"] == "extra_forbidden":
            msg = "unknown key (docs/bundle-format.md lists the keys)"
        lines.append(f"{where(path, yaml_position(text, loc))}: {dotted}: {msg}")
    head = f"{path}: {len(lines)} problem(s):\n  " if len(lines) > 1 else ""
    return head + "\n  ".join(lines)

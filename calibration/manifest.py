"""`manifest.yaml` of a trace bundle: what was recorded (pools, batching, users schedule,
hardware, Triton) as a typed model; errors name the line, the column and the dotted key."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from calibration.locate import where, yaml_position
from kisim.core.config import BatchingConfig
from kisim.core.errors import TraceError


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


def read_manifest(path: Path) -> Manifest:
    if not path.is_file():
        raise TraceError(f"{path}: missing (every bundle has a manifest.yaml)")
    text = path.read_text()
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
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = [p for p in first["loc"] if not str(p).startswith("function-after")]
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown key (docs/bundle-format.md lists the keys)"
        more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise TraceError(
            f"{where(path, yaml_position(text, loc))}: {dotted}: {msg}{more}"
        ) from None

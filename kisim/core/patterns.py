"""Load patterns: the level of offered load over time, shared by twin and Locust.

A pattern's level is a number of users (closed loop, Locust) or a request rate
(open loop). The same definitions drive the twin's traffic and the bridge's
``LoadTestShape``, so "spike" means the same thing in both. Patterns are pure
functions of time once built from (params, seed); `random` draws its levels from
the seed at construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field, ValidationError

from kisim.core.errors import ConfigError
from kisim.core.pattern_base import PATTERNS, Pattern, _Params, register
from kisim.core.recorded_patterns import (
    Replay,
    Schedule,
    Trace,
    read_rate_series,
    read_series,
)

__all__ = ["PATTERNS", "Pattern", "LevelFn", "make_pattern", "read_rate_series", "read_series",
           "validate_pattern"]  # fmt: skip


# --------------------------------------------------------------------------- seed patterns


class ConstantParams(_Params):
    level: float = Field(120.0, ge=0, description="Users (or req/s).")


@register
class Constant(Pattern):
    """The same level throughout."""

    name = "constant"
    Params = ConstantParams

    def level(self, t: float) -> float:
        return self.p.level  # type: ignore[attr-defined]


class StepParams(_Params):
    levels: list[float] = Field([40.0, 120.0, 250.0], min_length=1, description="Held in turn.")
    step_s: float = Field(150.0, gt=0, description="How long each level holds (last holds on).")


@register
class Step(Pattern):
    """Levels held in turn, `step_s` each (e.g. 40 -> 120 -> 250 users)."""

    name = "step"
    Params = StepParams

    def level(self, t: float) -> float:
        lv: list[float] = self.p.levels  # type: ignore[attr-defined]
        return lv[min(int(t // self.p.step_s), len(lv) - 1)]  # type: ignore[attr-defined]


class RampParams(_Params):
    start: float = Field(10.0, ge=0)
    peak: float = Field(300.0, ge=0)
    ramp_s: float = Field(240.0, gt=0, description="Duration of the way up.")
    hold_s: float = Field(60.0, ge=0, description="Time at the peak.")
    down: bool = Field(True, description="Ramp back down over `ramp_s` after the hold.")


@register
class Ramp(Pattern):
    """Linear up to the peak, a hold, then optionally back down."""

    name = "ramp"
    Params = RampParams

    def level(self, t: float) -> float:
        p: Any = self.p
        if t < p.ramp_s:
            return p.start + (p.peak - p.start) * t / p.ramp_s
        if not p.down or t < p.ramp_s + p.hold_s:
            return p.peak
        u = min((t - p.ramp_s - p.hold_s) / p.ramp_s, 1.0)
        return p.peak + (p.start - p.peak) * u


class SpikeParams(_Params):
    base: float = Field(60.0, ge=0)
    peak: float = Field(400.0, ge=0)
    start_s: float = Field(180.0, ge=0, description="When the spike begins.")
    rise_s: float = Field(10.0, ge=0)
    hold_s: float = Field(60.0, ge=0)
    fall_s: float = Field(10.0, ge=0)


@register
class Spike(Pattern):
    """A base load with one sudden burst."""

    name = "spike"
    Params = SpikeParams

    def level(self, t: float) -> float:
        p: Any = self.p
        x = t - p.start_s
        if x < 0:
            return p.base
        if x < p.rise_s:
            return p.base + (p.peak - p.base) * x / p.rise_s
        x -= p.rise_s
        if x < p.hold_s:
            return p.peak
        x -= p.hold_s
        if x < p.fall_s:
            return p.peak + (p.base - p.peak) * x / p.fall_s
        return p.base


class PeriodicParams(_Params):
    base: float = Field(150.0, ge=0)
    amplitude: float = Field(120.0, ge=0)
    period_s: float = Field(300.0, gt=0)
    phase_s: float = Field(0.0, description="Shift of the sine.")


@register
class Periodic(Pattern):
    """A sine around a base level (diurnal-like cycles, compressed)."""

    name = "periodic"
    Params = PeriodicParams

    def level(self, t: float) -> float:
        p: Any = self.p
        return max(0.0, p.base + p.amplitude * math.sin(2 * math.pi * (t + p.phase_s) / p.period_s))


class RandomParams(_Params):
    low: float = Field(30.0, ge=0)
    high: float = Field(350.0, ge=0)
    change_s: float = Field(30.0, gt=0, description="A new level is drawn this often.")
    horizon_s: float = Field(7200.0, gt=0, description="Levels are pre-drawn this far.")


@register
class Random(Pattern):
    """Piecewise-constant levels drawn uniformly in [low, high] from the run's seed."""

    name = "random"
    Params = RandomParams

    def __init__(self, params: _Params, seed: int = 0) -> None:
        super().__init__(params, seed)
        p: Any = params
        n = int(math.ceil(p.horizon_s / p.change_s)) + 1
        rng = np.random.default_rng([seed, 0x5EED])
        self._levels = rng.uniform(p.low, p.high, size=n).round().tolist()

    def level(self, t: float) -> float:
        i = min(int(t // self.p.change_s), len(self._levels) - 1)  # type: ignore[attr-defined]
        return float(self._levels[i])


# --------------------------------------------------------------------------- profiles


class LowParams(_Params):
    level: float = Field(20.0, ge=0)


@register
class Low(Pattern):
    """Light steady load: one replica per pool is plenty."""

    name = "low"
    Params = LowParams

    def level(self, t: float) -> float:
        return self.p.level  # type: ignore[attr-defined]


class HighParams(_Params):
    level: float = Field(350.0, ge=0)


@register
class High(Pattern):
    """Heavy steady load: needs the GPU and several CPU replicas."""

    name = "high"
    Params = HighParams

    def level(self, t: float) -> float:
        return self.p.level  # type: ignore[attr-defined]


class MixedParams(_Params):
    segment_s: float = Field(150.0, gt=0, description="Length of each phase.")
    low: float = Field(30.0, ge=0)
    high: float = Field(350.0, ge=0)


@register
class Mixed(Pattern):
    """low -> ramp up -> spike -> periodic, each `segment_s` long, then repeat."""

    name = "mixed"
    Params = MixedParams

    def level(self, t: float) -> float:
        p: Any = self.p
        seg, x = divmod(t, 4 * p.segment_s)
        phase, x = divmod(x, p.segment_s)
        mid = (p.low + p.high) / 2
        if phase == 0:
            return p.low
        if phase == 1:
            return p.low + (mid - p.low) * x / p.segment_s
        if phase == 2:
            return p.high if x < p.segment_s / 3 else mid
        return mid + (p.high - mid) * 0.5 * math.sin(2 * math.pi * x / p.segment_s)


for _recorded in (Replay, Trace, Schedule):  # after the synthetic ones: the registry's order
    register(_recorded)


# --------------------------------------------------------------------------- registry API


def validate_pattern(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check a pattern name and params; returns params with defaults filled in."""
    cls = PATTERNS.get(name)
    if cls is None:
        raise ValueError(f"unknown pattern '{name}' (known: {', '.join(PATTERNS)})")
    try:
        return cls.Params.model_validate(params).model_dump()
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ValueError(f"params.{loc}: {first['msg']}") from None


def make_pattern(name: str, params: dict[str, Any] | None = None, seed: int = 0) -> Pattern:
    """Build a pattern from the registry."""
    cls = PATTERNS.get(name)
    if cls is None:
        raise ConfigError(f"unknown pattern '{name}' (known: {', '.join(PATTERNS)})")
    return cls(cls.Params.model_validate(params or {}), seed)


LevelFn = Callable[[float], float]

"""Load patterns: the level of offered load over time, shared by twin and Locust.

A pattern's level is a number of users (closed loop, Locust) or a request rate
(open loop). The same definitions drive the twin's traffic and the bridge's
``LoadTestShape``, so "spike" means the same thing in both. Patterns are pure
functions of time once built from (params, seed); `random` draws its levels from
the seed at construction.
"""

from __future__ import annotations

import csv
import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kisim.core.errors import ConfigError
from kisim.core.registry import registrar


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pattern(ABC):
    """Base: subclasses define `Params` and `level(t)`."""

    name: ClassVar[str]
    Params: ClassVar[type[_Params]]

    def __init__(self, params: _Params, seed: int = 0) -> None:
        self.p = params
        self.seed = seed

    @abstractmethod
    def level(self, t: float) -> float:
        """The load level at `t` s: users (closed loop) or requests/s (open loop)."""

    def peak(self, horizon_s: float, step_s: float = 1.0) -> float:
        return max(self.level(t) for t in np.arange(0.0, horizon_s + step_s, step_s))


PATTERNS: dict[str, type[Pattern]] = {}


register = registrar(PATTERNS)


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


class ReplayParams(_Params):
    csv: str = Field(description="CSV with columns t_s,level (rate series or users).")
    scale: float = Field(1.0, gt=0, description="Multiplies every level.")
    interpolate: bool = Field(False, description="Linear between rows instead of steps.")


@register
class Replay(Pattern):
    """Replay of a recorded series (rate or users) from CSV."""

    name = "replay"
    Params = ReplayParams

    def __init__(self, params: _Params, seed: int = 0) -> None:
        super().__init__(params, seed)
        p: Any = params
        self._t, self._v = read_series(Path(p.csv))
        self._v = self._v * p.scale

    def level(self, t: float) -> float:
        if self.p.interpolate:  # type: ignore[attr-defined]
            return float(np.interp(t, self._t, self._v))
        i = int(np.searchsorted(self._t, t, side="right")) - 1
        return float(self._v[max(i, 0)])


class TraceParams(_Params):
    csv: str = Field(
        description="CSV of an arrival-rate series, columns t_s,rate_rps (t_s from 0, "
        "increasing; each rate holds until the next row); relative to the scenario file."
    )
    speedup: float = Field(
        1.0, gt=0, allow_inf_nan=False,
        description="Time compression: trace second t plays at t / speedup.",
    )  # fmt: skip
    scale: float = Field(
        1.0, gt=0, allow_inf_nan=False,
        description="Multiplies every rate (replaying every request k times faster is "
        "speedup k, scale k).",
    )  # fmt: skip
    offset_s: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="Trace time at which the run starts."
    )

    @field_validator("csv")
    @classmethod
    def _readable(cls, v: str) -> str:
        try:
            read_rate_series(Path(v))
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return v


@register
class Trace(Pattern):
    """Open-loop replay of a recorded arrival-rate series (CSV t_s,rate_rps), compressed, scaled.

    Trace second ``offset_s + t x speedup`` plays at run second t, its rate times `scale`;
    the series wraps around at its end (the last row holds for the median row step)."""

    name = "trace"
    Params = TraceParams

    def __init__(self, params: _Params, seed: int = 0) -> None:
        super().__init__(params, seed)
        p: Any = params
        self._t, self._v = read_rate_series(Path(p.csv))
        self._v = self._v * p.scale
        # the last row holds for the median step, then the trace starts again
        step = float(np.median(np.diff(self._t))) if len(self._t) > 1 else 1.0
        self._period = float(self._t[-1]) + step

    def level(self, t: float) -> float:
        p: Any = self.p
        x = (p.offset_s + t * p.speedup) % self._period
        i = int(np.searchsorted(self._t, x, side="right")) - 1
        return float(self._v[max(i, 0)])


def read_rate_series(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """`t_s,rate_rps` rows of a rate series (cached per file version); errors name the file,
    line and column, on one line."""
    try:
        st = path.stat()
    except OSError:
        raise ConfigError(f"{path}: no such file") from None
    if not path.is_file():
        raise ConfigError(f"{path}: not a file")
    return _rate_series(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _rate_series(path_s: str, mtime_ns: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    path = Path(path_s)
    ts: list[float] = []
    vs: list[float] = []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"t_s", "rate_rps"} <= set(reader.fieldnames):
                raise ConfigError(f"{path}: line 1: header must contain t_s,rate_rps")
            for row in reader:
                line = reader.line_num
                vals = []
                for col in ("t_s", "rate_rps"):
                    try:
                        val = float(row[col])
                    except (TypeError, ValueError):
                        raise ConfigError(f"{path}: line {line}: column {col}: "
                                          "not a number") from None
                    if not math.isfinite(val) or val < 0:
                        raise ConfigError(f"{path}: line {line}: column {col}: must be a finite "
                                          "number >= 0")  # fmt: skip
                    vals.append(val)
                if ts and vals[0] <= ts[-1]:
                    raise ConfigError(f"{path}: line {line}: column t_s: times must increase")
                ts.append(vals[0])
                vs.append(vals[1])
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8) CSV file") from None
    except csv.Error as e:
        raise ConfigError(f"{path}: not a valid CSV file ({e})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or e})") from None
    if not ts:
        raise ConfigError(f"{path}: no rows")
    t, v = np.asarray(ts), np.asarray(vs)
    t.flags.writeable = v.flags.writeable = False  # shared by the cache
    return t, v


class ScheduleParams(_Params):
    points: list[tuple[float, float]] = Field(
        min_length=1, description="(t_s, level) rows, t_s increasing; level 0 before the first."
    )
    interpolate: bool = Field(False, description="Linear between rows instead of steps.")

    @field_validator("points")
    @classmethod
    def _increasing(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        ts = [t for t, _ in points]
        if any(t < 0 for t in ts) or any(lv < 0 for _, lv in points):
            raise ValueError("t_s and level must be >= 0")
        if any(b <= a for a, b in zip(ts, ts[1:], strict=False)):
            raise ValueError("t_s must increase")
        return points


@register
class Schedule(Pattern):
    """An inline schedule of levels (a trace bundle's users schedule), stepwise from each t_s."""

    name = "schedule"
    Params = ScheduleParams

    def __init__(self, params: _Params, seed: int = 0) -> None:
        super().__init__(params, seed)
        p: Any = params
        self._t = np.asarray([t for t, _ in p.points], dtype=float)
        self._v = np.asarray([v for _, v in p.points], dtype=float)

    def level(self, t: float) -> float:
        if t < self._t[0]:
            return 0.0
        if self.p.interpolate:  # type: ignore[attr-defined]
            return float(np.interp(t, self._t, self._v))
        return float(self._v[int(np.searchsorted(self._t, t, side="right")) - 1])


def read_series(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read `t_s,level` rows; errors name the file, line and column."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    ts: list[float] = []
    vs: list[float] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"t_s", "level"} <= set(reader.fieldnames):
            raise ConfigError(f"{path}: line 1: header must contain t_s,level")
        for row in reader:
            line = reader.line_num
            for col in ("t_s", "level"):
                try:
                    val = float(row[col])
                except (TypeError, ValueError):
                    raise ConfigError(f"{path}: line {line}: column {col}: not a number") from None
                if not math.isfinite(val) or val < 0:
                    raise ConfigError(f"{path}: line {line}: column {col}: must be >= 0")
            if ts and float(row["t_s"]) <= ts[-1]:
                raise ConfigError(f"{path}: line {line}: column t_s: times must increase")
            ts.append(float(row["t_s"]))
            vs.append(float(row["level"]))
    if not ts:
        raise ConfigError(f"{path}: no rows")
    return np.asarray(ts), np.asarray(vs)


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

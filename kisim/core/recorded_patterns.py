"""Patterns read from files: a recorded series replayed (`replay`), a production arrival
trace as rates (`trace`), a user's schedule (`schedule`). `kisim.core.patterns` registers
them after the synthetic ones, so the registry's order (and every list of known patterns)
stays as it was."""

from __future__ import annotations

import csv
import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from kisim.core.errors import ConfigError
from kisim.core.pattern_base import Pattern, _Params


class ReplayParams(_Params):
    csv: str = Field(description="CSV with columns t_s,level (rate series or users).")
    scale: float = Field(1.0, gt=0, description="Multiplies every level.")
    interpolate: bool = Field(False, description="Linear between rows instead of steps.")


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
        return series_level(t, self._t, self._v, self.p.interpolate)  # type: ignore[attr-defined]


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
        return series_level((p.offset_s + t * p.speedup) % self._period, self._t, self._v)


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
                        raise ConfigError(
                            f"{path}: line {line}: column {col}: not a number"
                        ) from None
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
        return series_level(t, self._t, self._v, self.p.interpolate)  # type: ignore[attr-defined]


def series_level(t: float, ts: np.ndarray, vs: np.ndarray, interpolate: bool = False) -> float:
    """The series' level at t: each value holds from its time to the next (the first value
    before it), or linear between rows."""
    if interpolate:
        return float(np.interp(t, ts, vs))
    return float(vs[max(int(np.searchsorted(ts, t, side="right")) - 1, 0)])


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

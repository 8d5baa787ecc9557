"""The load pattern's base class and the registry every pattern is filed in
(`kisim.core.patterns` for the synthetic ones, `kisim.core.recorded_patterns` for the ones
read from files)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

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

    def mean(self, horizon_s: float, step_s: float) -> float:
        """The mean level of the steps of `step_s` over `horizon_s`, each read at its middle."""
        n = max(int(horizon_s // step_s), 1)
        return sum(self.level((i + 0.5) * step_s) for i in range(n)) / n


PATTERNS: dict[str, type[Pattern]] = {}


register = registrar(PATTERNS)

"""What a training run must carry across ``--resume`` besides the model: `RunState`
(evaluation history, best score, time used by earlier sessions, why training stopped)
and the `Clock` that counts the wall time of all sessions together."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from agents.training.convergence import EvalRecord


@dataclass
class RunState:
    history: list[EvalRecord] = field(default_factory=list)
    best_mean: float = -math.inf
    best_index: int = -1
    best_timesteps: int = -1
    best_wall_s: float = math.nan
    first_beats: dict[str, Any] | None = None  # first evaluation beating the baseline everywhere
    wall_before_s: float = 0.0  # wall seconds of earlier sessions (resume)
    stop_kind: str | None = None  # converged | timesteps | time_budget | interrupted
    stop_reason: str | None = None
    last_decision: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "history": [r.to_json() for r in self.history], "best_mean": self.best_mean,
            "best_index": self.best_index, "best_timesteps": self.best_timesteps,
            "best_wall_s": self.best_wall_s, "first_beats": self.first_beats,
            "wall_before_s": self.wall_before_s, "stop_kind": self.stop_kind,
            "stop_reason": self.stop_reason, "last_decision": self.last_decision,
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunState:
        def num(x: Any, default: float) -> float:
            return default if x is None else float(x)

        return cls(
            history=[EvalRecord.from_json(r) for r in d.get("history", [])],
            best_mean=num(d.get("best_mean"), -math.inf), best_index=int(d.get("best_index", -1)),
            best_timesteps=int(d.get("best_timesteps", -1)),
            best_wall_s=num(d.get("best_wall_s"), math.nan), first_beats=d.get("first_beats"),
            wall_before_s=num(d.get("wall_before_s"), 0.0),
            last_decision=d.get("last_decision", ""),
        )  # fmt: skip


class Clock:
    """Wall seconds of the whole run: earlier sessions + this one since `t0`."""

    def __init__(self, state: RunState, t0: float | None = None) -> None:
        self.state = state
        self.t0 = time.perf_counter() if t0 is None else t0

    def __call__(self) -> float:
        return self.state.wall_before_s + (time.perf_counter() - self.t0)

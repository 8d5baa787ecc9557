"""The clairvoyant oracle: receding-horizon search in the twin itself.

At every agent step the oracle tries candidate actions on *snapshots of the running
episode* - the same twin, the same seed, so the future load and every random draw are
known - and takes the one whose next ``horizon`` steps (candidate, then hold) earn the
most env reward. Its objective is therefore exactly the env's reward (the scenario's
``env.reward`` preset): the ceiling RL is measured against.

Snapshots. A `TwinBackend` cannot be deep-copied (SimPy processes are generators), so
the oracle snapshots the whole process with ``os.fork()``: each candidate runs in a
copy-on-write child that reports its reward through a pipe and exits (~7 ms a fork
here, plus the simulated steps). Where fork is missing (or with ``oracle:H:replay``),
it replays: a fresh env, the same seed, the action prefix, then the candidate - the
twin is deterministic, so both give identical scores (tested), replay at O(T^2) cost.

Candidates per step: every combination of per-pool moves - GPU pools the small rungs, CPU
pools all five (`env.replica_steps`; by default -1/0/+1 and -2..+2 pods; seed layout: 15,
<= 17 with placements) - at the current placement (moves that clamp
to the same targets are tried once), then the best of those with each other placement when
two or more pools keep pods (otherwise placement cannot matter); "hold" comes first, so ties
keep things as they are. docs/baselines.md compares it with an exhaustive search over short
episodes (`brute_force`). ``oracle:H:plan`` searches wider (`Oracle`).
"""

from __future__ import annotations

import itertools
import math
import os
import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agents.policies.base import Policy, parse_int
from kisim.core.errors import KisimError
from kisim.core.window import Window
from kisim.env.environment import KisimEnv

Score = Callable[[Sequence[np.ndarray], int], list[float]]


def _rollout(env: KisimEnv, first: Any, horizon: int) -> float:
    """Reward of `first` (an action, or a list of actions taken one per step: a plan), then
    `hold` for the rest of the horizon (or the episode)."""
    plan = first if isinstance(first, list) else [first]
    total, trunc = 0.0, False
    for k in range(horizon):
        if trunc:
            break
        _, r, _, trunc, _ = env.step(plan[k] if k < len(plan) else env.hold())
        total += r
    return total


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        c = os.read(fd, 65536)
        if not c:
            break
        chunks.append(c)
    os.close(fd)
    return b"".join(chunks)


def _spawn(work: Callable[[], bytes]) -> tuple[int, int]:
    """Fork a child that writes `work()` to a pipe and exits at once; (pid, read fd)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no cleanup handlers, no buffered output of the parent's
        code = 1
        try:
            os.close(rfd)
            data = work()
            view = memoryview(data)
            while view:
                view = view[os.write(wfd, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    return pid, rfd


def fork_scores(env: KisimEnv, cands: Sequence[Any], horizon: int,
                jobs: int | None = None) -> list[float]:  # fmt: skip
    """Score each candidate in a forked copy of this process (the env is left untouched);
    up to `jobs` children at a time (default: one per CPU)."""
    jobs = max(1, jobs or os.cpu_count() or 1)
    out: list[float] = []
    for k in range(0, len(cands), jobs):
        kids = [_spawn(lambda a=a: struct.pack("d", _rollout(env, a, horizon)))
                for a in cands[k : k + jobs]]  # fmt: skip
        for pid, rfd in kids:
            data = _read_all(rfd)
            os.waitpid(pid, 0)
            out.append(struct.unpack("d", data)[0] if len(data) == 8 else -math.inf)
    return out


class ReplayScorer:
    """Scores by re-simulating from the start: a fresh env, the same seed and actions."""

    def __init__(self, env: KisimEnv) -> None:
        self.env = env
        self.prefix: list[Any] = []

    def _fresh(self) -> KisimEnv:
        e = self.env
        sim = KisimEnv(e.scenario, patterns=[e.pattern_name])
        sim.reset(options={"twin_seed": e.twin_seed, "pattern": e.pattern_name})
        for a in self.prefix:
            sim.step(a)
        return sim

    def __call__(self, cands: Sequence[Any], horizon: int) -> list[float]:
        out = []
        for a in cands:
            sim = self._fresh()
            out.append(_rollout(sim, a, horizon))
            sim.close()
        return out


class Oracle(Policy):
    """``oracle`` / ``oracle:H`` (look-ahead horizon in steps, default 2) / ``oracle:H:replay``
    / ``oracle:H:plan`` (the wider search below; combines with ``:replay``).

    ``plan`` fixes three blind spots of scoring "a move, then hold": (1) other placements are
    tried for the best ``PLAN_TOP`` moves, not only the best one (a GPU pod pays only with a
    split that sends it traffic, so "add a GPU pod at a new split" is missed when adding
    at the current split looks worse than holding); (2) the best ``PLAN_TOP`` moves are also
    scored *deferred* - hold for d steps (`PLAN_DELAYS`), then the move - and when a deferred
    plan beats every immediate move the oracle holds now: with "move, then hold" over a long
    horizon, ordering a pod minutes before a surge (or removing one inside a surge, since the
    hold cannot scale down after it) scores better than holding, though later is better
    than both; (3) the best ``PLAN_TOP`` moves that only remove pods are scored as *round
    trips* - the move now, its reverse d steps later - and taken when one beats the rest:
    between two surges "remove, then hold" runs into the next surge, so a fleet kept for it
    idles through the quiet minutes although dropping it and ordering it back in time pays.
    Each decision re-plans, so only the first action of a plan is ever taken.
    """

    name = "oracle"
    arg_help = "look-ahead horizon in agent steps (default 2), optionally ':plan', ':replay'"

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        parts = arg.split(":") if arg else []
        self.horizon = parse_int(f"oracle:{arg}", parts[0], 1, 20) if parts else 2
        self.plan = "plan" in parts[1:]
        rest = [x for x in parts[1:] if x != "plan"]
        mode = rest[0] if rest else ("fork" if hasattr(os, "fork") else "replay")
        if mode not in ("fork", "replay") or len(rest) > 1 or parts[1:].count("plan") > 1:
            raise KisimError(f"policy 'oracle:{arg}': expected oracle:H or oracle:H:replay, "
                             "either optionally with :plan")  # fmt: skip
        self.mode = mode
        self.decisions: list[tuple[float, list[int], float]] = []  # (t, action, score)

    def attach(self, env: KisimEnv) -> None:
        super().attach(env)
        if env.scenario.env.action != "replicas":
            raise KisimError("the oracle plans in the 'replicas' action preset")
        self._replay = ReplayScorer(env) if self.mode == "replay" else None
        self.decisions = []

    def _score(self, cands: Sequence[np.ndarray], horizon: int) -> list[float]:
        assert self.env is not None
        if self._replay is not None:
            return self._replay(cands, horizon)
        return fork_scores(self.env, cands, horizon)

    def act(self, obs: np.ndarray, window: Window | None, t: float) -> Any:
        env = self.env
        assert env is not None and env.state is not None
        st, ctx = env.state, env.ctx
        steps_left = math.ceil((ctx.duration_s - st.t) / ctx.step_s - 1e-9)
        h = max(1, min(self.horizon, steps_left))
        pl = ctx.placements.index(st.placement)
        moves = [DG if ctx.kinds.get(p, p) == "gpu" else DC for p in ctx.layout]
        cands = candidates(ctx.layout, st.desired, ctx.min_replicas, ctx.max_replicas, pl, moves,
                           ctx.rungs)
        scores = self._score(cands, h)
        if self.plan:
            a, score = self._plan(cands, scores, pl, h)
        else:
            a, score = self._placed(cands, scores, [int(np.argmax(scores))], pl, h)
        self.decisions.append((t, [int(x) for x in a], float(score)))
        if self._replay is not None:
            self._replay.prefix.append(a)
        return a

    def _placed(self, cands: list[np.ndarray], scores: list[float], top: Sequence[int],
                pl: int, h: int) -> tuple[np.ndarray, float]:  # fmt: skip
        """The best of `cands` and of the moves `top` at every other placement."""
        env = self.env
        assert env is not None and env.state is not None
        st, ctx = env.state, env.ctx
        best = int(np.argmax(scores))
        a, score = cands[best], scores[best]
        others = []
        for i in top:
            # placement only matters with pods in two pools or more (else one way to go)
            kept = sum(st.desired.get(p, 0) + ctx.rungs[int(cands[i][k])] > 0
                       for k, p in enumerate(ctx.layout))  # fmt: skip
            if kept >= 2:
                others += [np.array([*cands[i][:-1], p], dtype=np.int64)
                           for p in range(len(ctx.placements)) if p != pl]  # fmt: skip
        s2 = self._score(others, h) if others else []
        if s2 and max(s2) > score:
            a, score = others[int(np.argmax(s2))], max(s2)
        return a, score

    def _plan(self, cands: list[np.ndarray], scores: list[float], pl: int,
              h: int) -> tuple[np.ndarray, float]:  # fmt: skip
        """``plan`` mode (class doc): placements for the best moves, deferrals, round trips."""
        top = [int(i) for i in np.argsort(scores)[::-1][:PLAN_TOP]]
        a, score = self._placed(cands, scores, top, pl, h)
        hold = cands[0]  # candidates() puts hold (at the current placement) first
        ranked = [cands[i] for i in sorted(range(len(cands)), key=lambda i: -scores[i])
                  if i != 0]  # fmt: skip
        ups = ([a] if not np.array_equal(a, hold) else []) + [
            m for m in ranked if not np.array_equal(m, a)]  # fmt: skip
        downs = [m for m in ranked if (m[:-1] <= 2).all()][:PLAN_TOP]
        delays = [d for d in PLAN_DELAYS if d < h]
        plans = [[hold] * d + [m] for m in ups[:PLAN_TOP] for d in delays]
        firsts = [hold] * len(plans)
        for m in downs:  # a pod dropped now, back in d steps (before the next surge)
            back = np.array([*(4 - m[:-1]), m[-1]], dtype=np.int64)
            plans += [[m] + [hold] * (d - 1) + [back] for d in delays]
            firsts += [m] * len(delays)
        s3 = self._score(plans, h) if plans else []  # type: ignore[arg-type]
        if s3 and max(s3) > score:
            k = int(np.argmax(s3))
            return firsts[k], s3[k]
        return a, score


PLAN_TOP = 3  # moves whose other placements and deferrals `plan` tries
PLAN_DELAYS: tuple[int, ...] = (1, 2, 4)  # steps a deferred move waits

DG: tuple[int, ...] = (0, 1, -1)  # a GPU pool's moves
DC: tuple[int, ...] = (0, 1, -1, 2, -2)  # a CPU pool's moves


def candidates(layout: Sequence[str], desired: dict[str, int], lo: dict[str, int],
               hi: dict[str, int], placement: int, moves: Sequence[Sequence[int]],
               rungs: Sequence[int]) -> list[np.ndarray]:  # fmt: skip
    """Every combination of per-pool moves (`moves[i]` for `layout[i]`, offsets from the hold
    index 2; `rungs[2 + d]` pods) that leads to distinct targets (clamped duplicates
    dropped), hold first; a pool absent from `desired` holds."""
    seen: set[tuple[int, ...]] = set()
    out = []
    for combo in itertools.product(*moves):
        target = tuple(min(max(desired.get(p, 0) + rungs[2 + d], lo.get(p, 0)), hi.get(p, 0))
                       for p, d in zip(layout, combo, strict=True))  # fmt: skip
        if target in seen:
            continue
        seen.add(target)
        out.append(np.array([d + 2 if p in desired else 2
                             for p, d in zip(layout, combo, strict=True)]
                            + [placement], dtype=np.int64))  # fmt: skip
    return out


def brute_force(env: KisimEnv, depth: int,
                cands: Callable[[KisimEnv], list[Any]]) -> tuple[float, list[Any]]:  # fmt: skip
    """The best total reward over every action sequence of `depth` steps from the env's
    current state (actions from `cands(env)` at each node), searched with fork snapshots.

    Exponential: len(cands) ** depth rollouts. For short validation episodes only.
    """
    if depth == 0:
        return 0.0, []
    best, best_seq = -math.inf, []
    for a in cands(env):

        def work(a: Any = a) -> bytes:
            _, r, _, trunc, _ = env.step(a)
            rest, seq = (0.0, []) if trunc else brute_force(env, depth - 1, cands)
            flat = [int(x) for s in seq for x in np.asarray(s).reshape(-1)]
            return struct.pack("d", r + rest) + struct.pack(f"{len(flat)}q", *flat)

        pid, rfd = _spawn(work)
        data = _read_all(rfd)
        os.waitpid(pid, 0)
        if len(data) < 8:
            continue
        total = struct.unpack("d", data[:8])[0]
        if total > best:
            rest_seq = np.frombuffer(data[8:], dtype=np.int64).reshape(-1, np.asarray(a).size)
            best, best_seq = total, [np.asarray(a)] + [row.copy() for row in rest_seq]
    return best, best_seq

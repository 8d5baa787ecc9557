"""Action presets (registry): how an agent's action becomes a `kisim.core.backend.Action`.

All presets are *relative*: an action moves the current settings by a few rungs, and
whatever would leave the configured bounds is clamped here and named in
``info["clamped"]`` (the backend clamps again to min/max replicas and reports its own).
`decode` updates the agent-side `EnvState` to the targets it asked for; the env then
re-reads replica counts and placement from each step's Window.

A preset may need a particular in-cluster controller (`controller`): `replicas` makes
the agent *the* autoscaler (`external`: no HPA fighting it), `hpa-target` needs the
HPA it steers; `resources` and `none` keep the scenario's controller. `min-scale` makes the
agent the floor of an in-cluster autoscaler (``env.autoscaler``) that the env runs inside
each step (`kisim.env.autoscalers`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from kisim.core.backend import Action, PoolSetting
from kisim.core.registry import registrar
from kisim.env.context import EnvContext, EnvState
from kisim.env.platform_view import PlatformMove

Decoded = tuple[Action | PlatformMove | None, dict[str, str], int]
"""(backend action, a move of the shared platform, or None; clamped settings -> why; settings
changed other than replicas and placement); replica and placement changes are counted from
the Window."""


def _ints(a: Any) -> list[int]:
    if isinstance(a, np.ndarray):
        return [int(x) for x in a.reshape(-1).tolist()]
    if isinstance(a, (int, np.integer)):
        return [int(a)]
    return [int(x) for x in a]


class ActionPreset(ABC):
    name: ClassVar[str]
    controller: ClassVar[str | None] = None  # controller.name the preset needs; None = keep
    needs_platform: ClassVar[bool] = False  # only for scenarios with a platform section
    needs_autoscaler: ClassVar[bool] = False  # the env runs ``env.autoscaler`` inside each step

    def __init__(self, ctx: EnvContext) -> None:
        self.ctx = ctx
        self.space: spaces.Space[Any] = self._space()

    @abstractmethod
    def _space(self) -> spaces.Space[Any]:
        """The Gymnasium action space of the preset."""

    @abstractmethod
    def decode(self, a: Any, st: EnvState) -> Decoded:
        """The agent's action as a backend `Action` (or None), what was clamped, changes."""

    @abstractmethod
    def hold(self, st: EnvState) -> Any:
        """The action that changes nothing (what a policy returns to wait)."""


ACTIONS: dict[str, type[ActionPreset]] = {}


register = registrar(ACTIONS)


@register
class Replicas(ActionPreset):
    """MultiDiscrete([5] * N + [P]): per pool of `EnvContext.layout` a replica move, index
    0..4 = `EnvContext.rungs` (-large, -small, 0, +small, +large pods; `env.replica_steps`,
    default -2..+2), then the placement, an index into `routing.placements` (absolute, not
    relative). Over the seed layout with the default placements this is the seed's
    MultiDiscrete([5, 5, 3]): GPU replicas, CPU replicas, {0: prefer-gpu, 1: balanced,
    2: prefer-cpu}."""

    name = "replicas"
    controller = "external"

    def _space(self) -> spaces.Space[Any]:
        return spaces.MultiDiscrete([5] * len(self.ctx.layout) + [len(self.ctx.placements)])

    def decode(self, a: Any, st: EnvState) -> Decoded:
        ctx = self.ctx
        v = _ints(a)
        pools: dict[str, PoolSetting] = {}
        clamped: dict[str, str] = {}
        for pool, d in zip(ctx.layout, (ctx.rungs[x] for x in v), strict=False):
            hi = ctx.max_replicas.get(pool)
            if hi is None:
                if d:
                    clamped[f"{pool}.replicas"] = f"{d:+d} ignored (no {pool} pool)"
                continue
            cur = st.desired[pool]
            want = cur + d
            n = min(max(want, ctx.min_replicas[pool]), hi)
            if n != want:
                bound = "max" if want > n else "min"
                clamped[f"{pool}.replicas"] = f"{want} -> {n} ({bound}_replicas)"
            if n != cur:
                pools[pool] = PoolSetting(replicas=n)
                st.desired[pool] = n
        placement = ctx.placements[v[len(ctx.layout)]]
        if placement == st.placement:
            if not pools:
                return None, clamped, 0
            return Action(pools=pools), clamped, 0
        st.placement = placement
        return Action(pools=pools, placement=placement), clamped, 0

    def hold(self, st: EnvState) -> Any:
        return np.array([2] * len(self.ctx.layout) + [self.ctx.placements.index(st.placement)],
                        dtype=np.int64)  # fmt: skip


def _rung(ladder: list[int], cur: int, d: int) -> int:
    """One rung up or down the ladder from `cur` (which need not be on it); stays at the ends."""
    if d > 0:
        up = [b for b in ladder if b > cur]
        return up[0] if up else cur
    if d < 0:
        down = [b for b in ladder if b < cur]
        return down[-1] if down else cur
    return cur


@register
class Resources(ActionPreset):
    """MultiDiscrete([3] * 4N): per pool of `EnvContext.layout` (seed: gpu, then cpu) CPU
    -/0/+ `cpu_step` cores, memory -/0/+ `memory_step_gib`, max batch size one rung
    down/keep/up the ladder, model instances -1/0/+1. Changes the pool's pod template; new
    pods get it and running pods are replaced by the Deployment's rolling update (twin:
    `twin.rollout`)."""

    name = "resources"
    FIELDS = ("cpu", "memory_gib", "max_batch_size", "instances")

    def _space(self) -> spaces.Space[Any]:
        return spaces.MultiDiscrete([3] * (4 * len(self.ctx.layout)))

    def decode(self, a: Any, st: EnvState) -> Decoded:
        cfg = self.ctx.cfg.resources
        v = _ints(a)
        pools: dict[str, PoolSetting] = {}
        clamped: dict[str, str] = {}
        changes = 0
        for k, pool in enumerate(self.ctx.layout):
            dc, dm, db, di = (v[4 * k + j] - 1 for j in range(4))
            t = st.templates.get(pool)
            if t is None:
                if dc or dm or db or di:
                    clamped[f"{pool}.resources"] = f"ignored (no {pool} pool)"
                continue
            new: dict[str, Any] = {}
            if dc:
                want = round(t.cpu + dc * cfg.cpu_step, 6)
                got = min(max(want, cfg.cpu_min), cfg.cpu_max)
                if got != want:
                    bound = "max" if want > got else "min"
                    clamped[f"{pool}.cpu"] = f"{want:g} -> {got:g} (cpu_{bound})"
                if got != t.cpu:
                    new["cpu"] = t.cpu = got
            if dm:
                want = round(t.memory_gib + dm * cfg.memory_step_gib, 6)
                got = min(max(want, cfg.memory_min_gib), cfg.memory_max_gib)
                if got != want:
                    bound = "max" if want > got else "min"
                    clamped[f"{pool}.memory_gib"] = f"{want:g} -> {got:g} (memory_{bound}_gib)"
                if got != t.memory_gib:
                    new["memory_gib"] = t.memory_gib = got
            if db:
                got = _rung(cfg.batch_sizes, t.max_batch_size, db)
                if got == t.max_batch_size:
                    clamped[f"{pool}.max_batch_size"] = f"{t.max_batch_size} is the ladder's end"
                else:
                    new["max_batch_size"] = t.max_batch_size = got
            if di:
                want = t.instances + di
                got = min(max(want, 1), cfg.instances_max)
                if got != want:
                    clamped[f"{pool}.instances"] = f"{want} -> {got} (1..{cfg.instances_max})"
                if got != t.instances:
                    new["instances"] = t.instances = got
            if new:
                pools[pool] = PoolSetting(**new)
                changes += len(new)
        return (Action(pools=pools) if pools else None), clamped, changes

    def hold(self, st: EnvState) -> Any:
        return np.ones(4 * len(self.ctx.layout), dtype=np.int64)


@register
class HPATarget(ActionPreset):
    """Discrete(5): the in-cluster HPA's target CPU utilisation -2, -1, 0, +1, +2 steps of
    `env.hpa_target.step`, within [min, max]. Needs `controller.name: hpa`."""

    name = "hpa-target"
    controller = "hpa"

    def _space(self) -> spaces.Space[Any]:
        return spaces.Discrete(5)

    def decode(self, a: Any, st: EnvState) -> Decoded:
        cfg = self.ctx.cfg.hpa_target
        d = _ints(a)[0] - 2
        if d == 0 or st.hpa_target is None:
            return None, {}, 0
        want = round(st.hpa_target + d * cfg.step, 6)
        got = min(max(want, cfg.min), cfg.max)
        clamped = {}
        if got != want:
            clamped["hpa_target"] = f"{want:g} -> {got:g} ({'max' if want > got else 'min'})"
        if got == st.hpa_target:
            return None, clamped, 0
        st.hpa_target = got
        return Action(hpa_target=got), clamped, 1

    def hold(self, st: EnvState) -> Any:
        return 2


PARTS = 5  # a min-scale action sets the floor of each fifth of the agent's step


@register
class MinScale(ActionPreset):
    """MultiDiscrete([F] * 5N + [P]), F = max - min + 1: per pool of `EnvContext.layout` the
    floor of the in-cluster autoscaler (``env.autoscaler``, e.g. Knative's KPA) for each fifth
    of the coming step, absolute (index k = min_replicas + k pods: what a controller patching
    ``autoscaling.knative.dev/min-scale`` writes); then the placement as in `replicas`. So one
    decision per step writes the step's cron entries at the autoscaler's resolution (a 10-s
    step, a 2-s KPA: one entry per tick), not the agent's. The autoscaler keeps deciding every
    tick and applies ``max(its own, floor)``: a floor above the current pods scales up when it
    takes effect (the first at once, as the PodAutoscaler reconciles the annotation), a lower
    one lets the autoscaler scale down at its own pace."""

    name = "min-scale"
    controller = "external"
    needs_autoscaler = True

    def _space(self) -> spaces.Space[Any]:
        ctx = self.ctx
        sizes = []
        for p in ctx.layout:
            f = ctx.max_replicas[p] - ctx.min_replicas[p] + 1 if p in ctx.max_replicas else 1
            sizes += [f] * PARTS
        return spaces.MultiDiscrete(sizes + [len(ctx.placements)])

    def decode(self, a: Any, st: EnvState) -> Decoded:
        ctx = self.ctx
        v = _ints(a)
        pools: dict[str, PoolSetting] = {}
        st.pending = {}
        for i, pool in enumerate(ctx.layout):
            if pool not in ctx.max_replicas:
                continue
            lo = ctx.min_replicas[pool]
            floors = [lo + k for k in v[PARTS * i : PARTS * (i + 1)]]
            now = st.floors[pool] = floors[0]
            st.pending[pool] = [(f, st.t + j * ctx.step_s / PARTS)
                                for j, f in enumerate(floors) if j]  # fmt: skip
            if st.desired[pool] < now:
                pools[pool] = PoolSetting(replicas=now)
                st.desired[pool] = now
        placement = ctx.placements[v[PARTS * len(ctx.layout)]]
        moved = placement != st.placement
        st.placement = placement
        if not pools and not moved:
            return None, {}, 0
        return Action(pools=pools, placement=placement if moved else None), {}, 0

    def hold(self, st: EnvState) -> Any:
        return min_scale_action(self.ctx, [st.floors] * PARTS, st.placement)


def min_scale_action(ctx: EnvContext, fifths: Sequence[Mapping[str, int]],
                     placement: str) -> np.ndarray:  # fmt: skip
    """The `min-scale` action that writes floor ``fifths[j][pool]`` for fifth j of the step,
    clamped to the pool's bounds (a pool a mapping does not name: its min_replicas), and sets
    `placement`."""
    out: list[int] = []
    for p in ctx.layout:
        if p not in ctx.max_replicas:
            out += [0] * PARTS
            continue
        lo, hi = ctx.min_replicas[p], ctx.max_replicas[p]
        out += [min(max(f.get(p, lo), lo), hi) - lo for f in fifths]
    return np.array(out + [ctx.placements.index(placement)], dtype=np.int64)


@register
class NoAction(ActionPreset):
    """Discrete(1): the agent only watches; the scenario's in-cluster controller acts.
    Used to score in-cluster baselines (static, HPA) with the same reward."""

    name = "none"

    def _space(self) -> spaces.Space[Any]:
        return spaces.Discrete(1)

    def decode(self, a: Any, st: EnvState) -> Decoded:
        return None, {}, 0

    def hold(self, st: EnvState) -> Any:
        return 0

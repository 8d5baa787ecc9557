"""Observation, action and reward presets over a scenario's shared platform (all named
``platform``; docs/platform.md, "The env over the platform").

They need a scenario with a ``platform:`` section and a backend that reports and steers it
(`kisim.core.platform.PlatformControl`); the env hands them a `PlatformView` per step
(``EnvState.platform``). The front-door service keeps its own in-cluster controller.

**Observation** (every feature in [0, 1] unless said): per model ``load`` (arrival rate over
the step / its rate at the pattern's peak, [0, 2]), ``miss`` (share of the step's settled
requests over the SLO or rejected; stalled = 1), ``busy`` (busy fraction of its ready
replicas), ``ready`` and ``desired`` (/ max_replicas), ``queue`` (/ max_queue_size); per node
pool ``nodes`` (ready), ``provisioning``, ``cordoned`` (spot notices and drains; all
/ max_nodes) and ``floor`` (the agent's floor / max_nodes); ``pending_pods`` (/ 20); per
tenant ``waiting_workflows`` (/ max_queued), ``waiting_steps`` (/ 20), ``cpu_use`` and
``gpu_use`` (quota in use / guaranteed quota, [0, 2]), ``held``; then the front door's
``p95_over_slo`` ([0, 4]), ``cost_rate`` (node money per hour / the bill at max_nodes) and
``progress``.

**Action** ``MultiDiscrete([3] * models + [3] * pools + [2] * tenants)``: per model replicas
-1 / 0 / +1 (the agent *is* the models' autoscaler: their HPAs are switched off, as the
``replicas`` preset switches the front door's off); per node pool its floor -1 / 0 / +1
(nodes added at once up to the floor and kept by the Cluster Autoscaler: scaling ahead of
demand, which CA alone cannot do); per tenant 0 = admit, 1 = hold its batch queue (Kueue
``stopPolicy: Hold``: nothing new admitted, running steps go on). Relative moves of one, as
decisions come every step and replicas bounds are small; holding is absolute. A pool's sharing
mode is node configuration (device-plugin ConfigMap and a node relabel), fixed per pool in the
scenario; what a model's pods request of it is not:

**Action** ``platform-gpu``: ``platform`` plus, per model on a time-sliced pool, its GPU
fraction, absolute: 0 = the scenario's request (a shared slot: 1 / replicas of a GPU, slowed
by its neighbours), 1 = every slot of a GPU (a whole GPU, twice the slots' price in capacity,
no neighbour). A change is a rolling update of the model's Deployment (`twin.platform.serving`:
maxSurge 100 %, maxUnavailable 0). MPS pools take one slot per pod (the device plugin fails
larger requests) and MIG profiles are fixed per pool, so neither has the choice.

**Reward** ``platform``: ``-w_cost cost - w_slo slo - w_backlog backlog + w_done done`` with
``cost`` = `PlatformView.cost_rate` ([0, 1]); ``slo`` = mean over tenants with requests in
the step of their models' missed share ([0, 1]); ``backlog`` = mean over tenants of waiting
workflows / max_queued ([0, 1]); ``done`` = workflows completed in the step / the expected
completions of a step (submissions per hour × step), halved and clipped to [0, 1]. Default
weights 1, 4, 1, 0.5: under the status quo the mixed-platform scenario's bill is about half
its largest (cost ≈ 0.47 of 8.6 USD/h), so one percentage point of interactive misses weighs
as much as 4 % of the largest bill (≈ 0.34 USD/h); a full batch queue weighs the largest bill.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from kisim.core.window import Window
from kisim.env.actions import ActionPreset, Decoded, _ints
from kisim.env.actions import register as register_action
from kisim.env.context import EnvContext, EnvState
from kisim.env.observation import LATENCY_CAP, Layout, ObservationPreset, latency_ratio
from kisim.env.observation import register as register_observation
from kisim.env.platform_view import STEPS_CAP, PlatformContext, PlatformMove, PlatformView
from kisim.env.rewards import Reference, RewardPreset
from kisim.env.rewards import register as register_reward

MODEL_FEATURES = ("load", "miss", "busy", "ready", "desired", "queue")
POOL_FEATURES = ("nodes", "provisioning", "cordoned", "floor")
TENANT_FEATURES = ("waiting_workflows", "waiting_steps", "cpu_use", "gpu_use", "held")


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def _pc(ctx: EnvContext) -> PlatformContext:
    if ctx.platform is None:
        raise ValueError("the platform presets need a scenario with a platform section")
    return ctx.platform


def _view(st: EnvState) -> PlatformView:
    if st.platform is None:
        raise ValueError("no platform view: the env was not reset on a platform scenario")
    return st.platform


@register_observation
class PlatformObservation(ObservationPreset):
    """The platform's models, node pools and tenants (module doc)."""

    name = "platform"
    needs_platform = True

    def _layout(self, ctx: EnvContext) -> Layout:
        pc = _pc(ctx)
        names: list[str] = []
        high: list[float] = []
        for m in pc.models:
            names += [f"{m}_{f}" for f in MODEL_FEATURES]
            high += [2.0, 1.0, 1.0, 1.0, 1.0, 1.0]
        for p in pc.pools:
            names += [f"{p}_{f}" for f in POOL_FEATURES]
            high += [1.0] * len(POOL_FEATURES)
        names.append("pending_pods")
        high.append(1.0)
        for t in pc.tenants:
            names += [f"{t}_{f}" for f in TENANT_FEATURES]
            high += [1.0, 1.0, 2.0, 2.0, 1.0]
        names += ["p95_over_slo", "cost_rate", "progress"]
        high += [LATENCY_CAP, 1.0, 1.0]
        return tuple(names), (0.0,) * len(names), tuple(high)

    def observe(self, w: Window | None, st: EnvState) -> np.ndarray:
        pc, v = _pc(self.ctx), _view(st)
        s = v.now
        out: list[float] = []
        for m in pc.models:
            mx = pc.max_replicas[m] or 1
            out += [_clip(v.load(m), 0.0, 2.0), v.miss(m), v.busy(m),
                    _clip(s[f"model_{m}_ready"] / mx, 0.0, 1.0),
                    _clip(s[f"model_{m}_desired"] / mx, 0.0, 1.0),
                    _clip(s[f"model_{m}_queue"] / pc.queue_cap[m], 0.0, 1.0)]  # fmt: skip
        for p in pc.pools:
            mx = pc.max_nodes[p] or 1
            out += [_clip(s[f"pool_{p}_nodes_ready"] / mx, 0.0, 1.0),
                    _clip(s[f"pool_{p}_nodes_provisioning"] / mx, 0.0, 1.0),
                    _clip(s[f"pool_{p}_nodes_cordoned"] / mx, 0.0, 1.0),
                    _clip(v.floor[p] / mx, 0.0, 1.0)]  # fmt: skip
        out.append(_clip(s["pending_pods"] / STEPS_CAP, 0.0, 1.0))
        for t in pc.tenants:
            out += [_clip(s[f"tenant_{t}_waiting_workflows"] / (pc.max_queued[t] or 1), 0.0, 1.0),
                    _clip(s[f"tenant_{t}_waiting_steps"] / STEPS_CAP, 0.0, 1.0),
                    _clip(s[f"tenant_{t}_used_cpu"] / pc.quota_cpu[t], 0.0, 2.0)
                    if pc.quota_cpu[t] > 0 else 0.0,
                    _clip(s[f"tenant_{t}_used_gpu"] / pc.quota_gpu[t], 0.0, 2.0)
                    if pc.quota_gpu[t] > 0 else 0.0,
                    1.0 if v.hold[t] else 0.0]  # fmt: skip
        p95 = 0.0 if w is None else latency_ratio(w, self.ctx.slo_ms)
        out += [p95, v.cost_rate(), _clip(st.t / self.ctx.duration_s, 0.0, 1.0)]
        return np.asarray(out, np.float32)


def _stepped(cur: int, d: int, lo: int, hi: int, key: str, what: str,
             clamped: dict[str, str]) -> int | None:
    """`cur` moved by `d` within [lo, hi]; a clamp is noted under `key`. None: no change."""
    if not d:
        return None
    want = cur + d
    n = min(max(want, lo), hi)
    if n != want:
        clamped[key] = f"{want} -> {n} ({'max' if want > n else 'min'}_{what})"
    return n if n != cur else None


@register_action
class PlatformAction(ActionPreset):
    """Per-model replicas, node-pool floors, held tenant queues (module doc)."""

    name = "platform"
    needs_platform = True
    owns_models: ClassVar[bool] = True  # the env switches the models' HPAs off

    def _space(self) -> spaces.Space[Any]:
        pc = _pc(self.ctx)
        return spaces.MultiDiscrete([3] * (len(pc.models) + len(pc.pools)) + [2] * len(pc.tenants))

    def decode(self, a: Any, st: EnvState) -> Decoded:
        pc, v = _pc(self.ctx), _view(st)
        x = _ints(a)
        nm, npl = len(pc.models), len(pc.pools)
        move = PlatformMove()
        clamped: dict[str, str] = {}
        changes = 0
        for m, code in zip(pc.models, x[:nm], strict=True):
            n = _stepped(v.desired(m), code - 1, pc.min_replicas[m], pc.max_replicas[m],
                         f"{m}.replicas", "replicas", clamped)  # fmt: skip
            if n is not None:
                move.replicas[m] = n
        for p, code in zip(pc.pools, x[nm:nm + npl], strict=True):
            n = _stepped(v.floor[p], code - 1, pc.min_nodes[p], pc.max_nodes[p],
                         f"{p}.floor", "nodes", clamped)  # fmt: skip
            if n is not None:
                move.pool_floor[p] = v.floor[p] = n
                changes += 1
        for t, code in zip(pc.tenants, x[nm + npl:], strict=True):
            on = bool(code)
            if on != v.hold[t]:
                move.hold[t] = v.hold[t] = on
                changes += 1
        return (move if move else None), clamped, changes

    def hold(self, st: EnvState) -> Any:
        pc, v = _pc(self.ctx), _view(st)
        return np.array([1] * (len(pc.models) + len(pc.pools))
                        + [int(v.hold[t]) for t in pc.tenants], dtype=np.int64)  # fmt: skip

    def encode(self, replicas: dict[str, int], floors: dict[str, int],
               hold: dict[str, bool]) -> np.ndarray:  # fmt: skip
        """The action moving each model by `replicas[m]` and each floor by `floors[p]` (-1..+1;
        missing: 0) and holding the tenants in `hold` (missing: admit)."""
        pc = _pc(self.ctx)
        return np.array([replicas.get(m, 0) + 1 for m in pc.models]
                        + [floors.get(p, 0) + 1 for p in pc.pools]
                        + [int(hold.get(t, False)) for t in pc.tenants],
                        dtype=np.int64)  # fmt: skip


@register_action
class PlatformGpuAction(PlatformAction):
    """`platform` plus a shared slot or a whole GPU per time-shared GPU model (module doc)."""

    name = "platform-gpu"

    def _space(self) -> spaces.Space[Any]:
        base = super()._space()
        assert isinstance(base, spaces.MultiDiscrete)
        return spaces.MultiDiscrete(list(base.nvec) + [2] * len(_pc(self.ctx).gpu_slots))

    def decode(self, a: Any, st: EnvState) -> Decoded:
        pc, v = _pc(self.ctx), _view(st)
        x = _ints(a)
        k = len(pc.gpu_slots)
        move, clamped, changes = super().decode(x[: len(x) - k], st)
        gpu: dict[str, int] = {}
        for m, code in zip(pc.gpu_slots, x[len(x) - k:], strict=True):
            want = pc.gpu_slots[m][code]
            if want != int(v.now[f"model_{m}_gpu"]):
                gpu[m] = want
        if not gpu:
            return move, clamped, changes
        base = move if isinstance(move, PlatformMove) else PlatformMove()
        move = PlatformMove(base.replicas, base.pool_floor, base.hold, gpu)
        return move, clamped, changes + len(gpu)

    def hold(self, st: EnvState) -> Any:
        pc, v = _pc(self.ctx), _view(st)
        whole = [int(int(v.now[f"model_{m}_gpu"]) == pc.gpu_slots[m][1]) for m in pc.gpu_slots]
        return np.concatenate([super().hold(st), np.array(whole, dtype=np.int64)])

    def encode(self, replicas: dict[str, int], floors: dict[str, int], hold: dict[str, bool],
               whole_gpu: dict[str, bool] | None = None) -> np.ndarray:  # fmt: skip
        """As `PlatformAction.encode`, each time-shared GPU model on a whole GPU when
        `whole_gpu[m]` (missing: its shared slot)."""
        pc, w = _pc(self.ctx), whole_gpu or {}
        return np.concatenate([super().encode(replicas, floors, hold),
                               np.array([int(w.get(m, False)) for m in pc.gpu_slots], np.int64)])


@register_reward
class PlatformReward(RewardPreset):
    """-cost - 4 slo - backlog + 0.5 done over the platform (module doc)."""

    name = "platform"
    needs_platform = True
    default_weights = {"cost": 1.0, "slo": 4.0, "backlog": 1.0, "done": 0.5}
    term_range = {"cost": (-1.0, 0.0), "slo": (-1.0, 0.0), "backlog": (-1.0, 0.0),
                  "done": (0.0, 1.0)}  # fmt: skip

    def terms(self, w: Window, ref: Reference, changes: int, st: EnvState) -> tuple[float, ...]:
        pc, v = _pc(self.ctx), _view(st)
        shares = []
        for t in pc.tenants:
            n, missed = v.tenant_miss(t)
            if n > 0:
                shares.append(missed / n)
        slo = sum(shares) / len(shares) if shares else 0.0
        backlog = sum(_clip(v.now[f"tenant_{t}_waiting_workflows"] / (pc.max_queued[t] or 1),
                            0.0, 1.0) for t in pc.tenants) / len(pc.tenants)  # fmt: skip
        expected = pc.workflows_per_hour * v.dt / 3600.0
        done = sum(v.completed(t) for t in pc.tenants)
        done_term = _clip(done / expected / 2.0, 0.0, 1.0) if expected > 0 else 0.0
        return (-v.cost_rate(), -_clip(slo, 0.0, 1.0), -backlog, done_term)


__all__ = ["PlatformAction", "PlatformGpuAction", "PlatformObservation", "PlatformReward"]

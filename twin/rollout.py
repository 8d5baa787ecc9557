"""Pod-template changes and the Deployment rolling update that replaces running pods.

`PoolSetting.cpu / memory_gib / max_batch_size / instances` change a pool's pod
template (the Deployment's `spec.template`): pods created from then on get the new
settings, and running pods are replaced by a rolling update with the strategy of
``manifests/kisim/3x-triton-*.yaml``:

* GPU pool: ``maxSurge: 0, maxUnavailable: 1`` (one GPU: a surge pod would only sit
  Pending) - an old pod is deleted first, its replacement starts when it is gone;
* CPU pool: ``maxSurge: 1, maxUnavailable: 0`` - a new pod starts first, an old one is
  deleted when the new one is Ready.

Like the Deployment controller (`rolling.go`: `reconcileNewReplicaSet`,
`reconcileOldReplicaSets`, `cleanupUnhealthyReplicas`) it acts on every pod event of
the pool: the new set grows while all pods < desired + maxSurge, the old set shrinks
while the Ready pods stay >= desired - maxUnavailable, old pods that are not Ready
going first. A change during a rollout starts over towards the newest template (pods
of any older template are "old"). Scaling during a rollout deletes pods by the
ReplicaSet ranking regardless of template (Kubernetes would scale old and new sets
proportionally): an approximation, documented in docs/environment.md.

`TwinBackend` keeps one `Rollouts` per episode and hands it every action's template
settings (`Rollouts.apply`) after the replica changes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from kisim.core.backend import PoolSetting
from kisim.core.config import PoolConfig
from twin.dataplane import DataPlane
from twin.pods import Phase, Pod, PodManager

# (maxSurge, maxUnavailable) by device kind, as in manifests/kisim/30-triton-gpu.yaml, 31-...cpu
STRATEGY = {"gpu": (0, 1), "cpu": (1, 0)}


def with_template(cfg: PoolConfig, s: PoolSetting) -> PoolConfig:
    """`cfg` with the template fields of `s` replaced (None keeps a field)."""
    res = cfg.resources
    if s.cpu is not None or s.memory_gib is not None:
        res = res.model_copy(update={
            "cpu": s.cpu if s.cpu is not None else res.cpu,
            "memory_gib": s.memory_gib if s.memory_gib is not None else res.memory_gib,
        })  # fmt: skip
    bat = cfg.batching
    if s.max_batch_size is not None:
        mb = s.max_batch_size
        bat = bat.model_copy(update={
            "max_batch_size": mb,
            "preferred_batch_sizes": [p for p in bat.preferred_batch_sizes if p <= mb],
        })  # fmt: skip
    inst = s.instances if s.instances is not None else cfg.instances
    return cfg.model_copy(update={"resources": res, "batching": bat, "instances": inst})


def _template_key(cfg: PoolConfig) -> tuple[float, float, int, int]:
    return (cfg.resources.cpu, cfg.resources.memory_gib, cfg.batching.max_batch_size,
            cfg.instances)  # fmt: skip


def changes_template(s: PoolSetting) -> bool:
    """Whether `s` sets any pod-template field (cpu, memory, max batch size, instances)."""
    return (s.cpu, s.memory_gib, s.max_batch_size, s.instances) != (None, None, None, None)


class Rollouts:
    """Template changes and rolling updates of one `TwinBackend` episode."""

    def __init__(self, pods: PodManager, dp: DataPlane) -> None:
        self.pods = pods
        self.dp = dp
        self.active: set[str] = set()  # pools with a rollout in progress
        self.started = 0  # rollouts begun (for tests and reports)
        self.pods.on_ready.append(self._on_event)
        self.pods.on_gone.append(self._on_event)

    def apply(self, pools: Mapping[str, PoolSetting]) -> dict[str, str]:
        """Set the template of every pool whose setting changes it; returns what was refused."""
        refused: dict[str, str] = {}
        for pool, s in pools.items():
            if changes_template(s):
                refused.update(self.set_template(pool, s))
        return refused

    def set_template(self, pool: str, s: PoolSetting) -> dict[str, str]:
        """Change the template; returns settings it refused (name -> why)."""
        cfg = self.pods.cfg.get(pool)
        if cfg is None:
            return {f"{pool}.template": "no such pool"}
        refused: dict[str, str] = {}
        if s.cpu is not None and s.cpu <= 0:
            refused[f"{pool}.cpu"] = f"{s.cpu} <= 0"
            s = PoolSetting(memory_gib=s.memory_gib, max_batch_size=s.max_batch_size,
                            instances=s.instances)  # fmt: skip
        if s.memory_gib is not None and s.memory_gib <= 0:
            refused[f"{pool}.memory_gib"] = f"{s.memory_gib} <= 0"
            s = PoolSetting(cpu=s.cpu, max_batch_size=s.max_batch_size, instances=s.instances)
        new = with_template(cfg, s)
        if _template_key(new) == _template_key(cfg):
            return refused
        self._ensure_capacity(new)
        self.pods.cfg[pool] = new
        self.active.add(pool)
        self.started += 1
        self._reconcile(pool)
        return refused

    # ------------------------------------------------------------------ controller

    def _ensure_capacity(self, cfg: PoolConfig) -> None:
        """Grow the data plane's per-replica arrays if the batch or instance count outgrows them."""
        dp = self.dp
        mb = cfg.batching.max_batch_size if cfg.batching.enabled else 1
        if mb > dp.maxb:
            old = dp.maxb
            curve = np.zeros((dp.curve.shape[0], mb + 1), np.float64)
            curve[:, : old + 1] = dp.curve
            dp.curve = curve
            cexp = np.zeros((dp.cexp.shape[0], mb + 1), np.float64)
            cexp[:, : old + 1] = dp.cexp
            dp.cexp = cexp
            bt = np.zeros((dp.bt.shape[0], mb), np.float64)
            bt[:, :old] = dp.bt
            bu = np.zeros((dp.bu.shape[0], mb), np.int64)
            bu[:, :old] = dp.bu
            dp.bt, dp.bu = bt, bu
            dp.maxb = mb
        dp.max_inst = max(dp.max_inst, cfg.instances)
        dp.margins = (2 * dp.maxb + dp.max_inst + 8, 3 * dp.maxb + dp.max_inst + 8, dp.maxb + 1)

    def _on_event(self, pod: Pod) -> None:
        if pod.pool in self.active:
            self._reconcile(pod.pool)

    def _reconcile(self, pool: str) -> None:
        pods = self.pods
        key = _template_key(pods.cfg[pool])
        n = pods.desired[pool]
        surge, unavail = STRATEGY.get(pods.cal.devices[pods.cfg[pool].device].kind, (1, 0))
        if surge == 0 and unavail == 0:
            surge = 1
        for _ in range(2):  # scale up, scale down, and up again into the room that freed
            act = pods.active(pool)
            old = [p for p in act if _template_key(p.cfg) != key]
            new = len(act) - len(old)
            # reconcileNewReplicaSet: grow the new set within desired + maxSurge
            for _ in range(max(min(n + surge - len(act), n - new), 0)):
                pods._create(pool)
            if not old:
                continue
            act = pods.active(pool)
            new_unready = sum(p.phase is not Phase.READY
                              for p in act if _template_key(p.cfg) == key)  # fmt: skip
            # reconcileOldReplicaSets: keep >= desired - maxUnavailable available
            max_down = len(act) - (n - unavail) - new_unready
            for p in sorted(old, key=_rank):
                if max_down <= 0:
                    break
                pods._delete(p)
                max_down -= 1
        act = pods.active(pool)
        if len(act) >= n and all(_template_key(p.cfg) == key for p in act):
            self.active.discard(pool)

    # (ReplicaSet ranking: unscheduled, then not ready, then ready; newest first)


def _rank(p: Pod) -> tuple[int, int]:
    level = 0 if p.binding is None else (1 if p.phase is not Phase.READY else 2)
    return level, -p.seq


def pods_by_template(pods: PodManager, pool: str) -> dict[tuple[float, float, int, int], int]:
    """Active pods of a pool per template (cpu, memory, max batch, instances): for tests."""
    out: dict[tuple[float, float, int, int], int] = {}
    for p in pods.active(pool):
        k = _template_key(p.cfg)
        out[k] = out.get(k, 0) + 1
    return out


__all__ = ["Rollouts", "STRATEGY", "changes_template", "with_template", "pods_by_template"]

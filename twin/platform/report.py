"""The platform's figures for a run's summary: per tenant, per priority class, per node pool.

Keys (all numbers): ``tenant_<t>_slo_attainment`` (share of its models' requests answered
within their SLO; rejected and still-queued requests count as misses), ``tenant_<t>_p95_ms``,
``tenant_<t>_workflows_{submitted,completed,failed,rejected}``,
``tenant_<t>_workflow_completion_s`` (mean submission -> end of completed workflows) and
``..._p95_s``, ``tenant_<t>_workflows_per_hour`` (completed per simulated hour),
``tenant_<t>_queue_s`` (mean wait of a step from asking for admission to its pod's binding),
``tenant_<t>_preemptions``; ``priority_<class>_preemptions``; ``pool_<p>_node_s``,
``pool_<p>_cost``; ``platform_{preemptions,reclaims,retries,spot_interruptions,scale_ups,
scale_downs,cache_hit_rate,cost,spot_cost,ondemand_cost,requests,slo_attainment}``
(``platform_requests``: every model's requests, answered, rejected or still queued;
``platform_slo_attainment``: the share of them answered within their model's SLO).

Node money: a node costs from its creation (providers bill from launch) to its removal, at
``prices.pod_hour(gpu_device, cpu, memory, gpus)`` (`kisim.core.prices`: the GPU share of a
one-GPU instance plus vCPUs at the general-purpose rate) times ``spot_price_factor`` on spot.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from kisim.core.platform import node_hour_price as pool_price

if TYPE_CHECKING:  # pragma: no cover
    from twin.platform.world import PlatformWorld


def key(name: str) -> str:
    """A priority-class name as a key part (``system-critical`` -> ``system_critical``)."""
    return name.replace("-", "_")


def node_hour_price(world: PlatformWorld, pool: str) -> float:
    """Money per node-hour of `pool` (`kisim.core.platform.node_hour_price`)."""
    return pool_price(world.cfg.node_pools[pool], world.sc.prices)


def platform_summary(world: PlatformWorld, now: float) -> dict[str, float]:
    """Every platform figure of the run so far (module doc)."""
    out: dict[str, float] = {}
    b = world.batch
    hours = now / 3600.0 if now > 0 else math.nan
    all_ok = all_n = 0
    for t in world.cfg.tenants:
        ok = n = 0
        lats: list[np.ndarray] = []
        for svc in world.models.values():
            if svc.spec.tenant == t:
                o, k = svc.slo_met()
                ok, n = ok + o, n + k
                lats.append(np.array(svc.latencies, dtype=float))
        all_ok, all_n = all_ok + ok, all_n + n
        lat = np.concatenate(lats) if lats else np.empty(0)
        runs = [r for r in b.runs if r.tenant == t]
        done = [r.ended_at - r.submitted for r in runs
                if r.ended_at is not None and not r.failed]  # fmt: skip
        q = b.queue_s[t]
        out |= {
            f"tenant_{t}_slo_attainment": ok / n if n else math.nan,
            f"tenant_{t}_p95_ms": float(np.percentile(lat, 95) * 1e3) if len(lat) else math.nan,
            f"tenant_{t}_workflows_submitted": float(len(runs)),
            f"tenant_{t}_workflows_completed": float(len(done)),
            f"tenant_{t}_workflows_failed": float(sum(r.failed for r in runs)
                                                  - b.queues[t].rejected),
            f"tenant_{t}_workflows_rejected": float(b.queues[t].rejected),
            f"tenant_{t}_workflow_completion_s": float(np.mean(done)) if done else math.nan,
            f"tenant_{t}_workflow_completion_p95_s": (float(np.percentile(done, 95))
                                                      if done else math.nan),
            f"tenant_{t}_workflows_per_hour": len(done) / hours,
            f"tenant_{t}_queue_s": float(np.mean(q)) if q else math.nan,
            f"tenant_{t}_preemptions": float(sum(1 for p in world.cluster.preemptions
                                                 if p.tenant == t) + b.preempted_by_reclaim(t)),
        }  # fmt: skip
    for pc in world.cfg.priority_classes:
        out[f"priority_{key(pc)}_preemptions"] = float(
            sum(1 for p in world.cluster.preemptions if p.priority_class == pc))
    spot = ondemand = 0.0
    for pool, spec in world.cfg.node_pools.items():
        node_s = sum((n.removed if n.removed is not None else now) - n.created
                     for n in world.all_nodes if n.pool == pool)  # fmt: skip
        cost = node_s / 3600.0 * node_hour_price(world, pool)
        out[f"pool_{pool}_node_s"] = node_s
        out[f"pool_{pool}_cost"] = cost
        if spec.spot:
            spot += cost
        else:
            ondemand += cost
    hits = b.cache.hits + b.cache.misses
    out |= {
        "platform_preemptions": float(len(world.cluster.preemptions)),
        "platform_reclaims": float(b.reclaims),
        "platform_retries": float(b.retries),
        "platform_spot_interruptions": float(world.interruptions),
        "platform_scale_ups": float(world.scale_ups),
        "platform_scale_downs": float(world.scale_downs),
        "platform_cache_hit_rate": b.cache.hits / hits if hits else math.nan,
        "platform_spot_cost": spot,
        "platform_ondemand_cost": ondemand,
        "platform_cost": spot + ondemand,
        "platform_requests": float(all_n),
        "platform_slo_attainment": all_ok / all_n if all_n else math.nan,
    }
    return out

"""Pure helpers of the Kubernetes actuator: the HPA object kisim writes, pod counting.

No API calls here, so both are unit-testable and the HPA body can be schema-checked by
``kubernetes-validate`` in tests/test_manifests.py like the files under manifests/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kisim.core.config import HPAConfig, PoolConfig, ScalingPolicy

MANAGED_BY = {"app.kubernetes.io/managed-by": "kisim"}


def _rules(stab_s: float, select: str, policies: list[ScalingPolicy]) -> dict[str, Any]:
    return {
        "stabilizationWindowSeconds": int(round(stab_s)),
        "selectPolicy": select,
        "policies": [
            {"type": p.type, "value": p.value, "periodSeconds": p.period_s} for p in policies
        ],
    }


def hpa_body(
    name: str,
    namespace: str,
    deployment: str,
    pool: str,
    pool_cfg: PoolConfig,
    hpa: HPAConfig,
    target_cpu_utilization: float,
) -> dict[str, Any]:
    """The autoscaling/v2 HPA for one pool: CPU utilisation target, the pool's bounds.

    minReplicas is at least 1: scale-to-zero needs the HPAScaleToZero feature gate.
    Tolerance, sync period and CPU initialisation are kube-controller-manager flags, not
    per-object fields; the cluster's defaults equal ``HPAConfig``'s defaults.
    """
    lo = max(1, pool_cfg.min_replicas)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**MANAGED_BY, "app.kubernetes.io/part-of": "kisim", "kisim.io/pool": pool},
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicas": lo,
            "maxReplicas": max(lo, pool_cfg.max_replicas),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": max(1, int(round(target_cpu_utilization * 100))),
                        },
                    },
                }
            ],
            "behavior": {
                "scaleUp": _rules(
                    hpa.scale_up_stabilization_s, hpa.scale_up_select, hpa.scale_up_policies
                ),
                "scaleDown": _rules(
                    hpa.scale_down_stabilization_s, hpa.scale_down_select, hpa.scale_down_policies
                ),
            },
        },
    }


@dataclass(frozen=True, slots=True)
class PodCounts:
    """Pods of one Deployment by stage; terminating and finished pods are not counted."""

    ready: int
    starting: int  # scheduled (or running) but not Ready yet
    unschedulable: int  # Pending with PodScheduled=False

    @property
    def pending(self) -> int:
        """Pods that exist for the Deployment but serve no traffic yet."""
        return self.starting + self.unschedulable


def _cond(pod: Any, kind: str) -> str | None:
    for c in (pod.status.conditions or []) if pod.status else []:
        if c.type == kind:
            return str(c.status)
    return None


def count_pods(pods: list[Any]) -> PodCounts:
    """Ready / starting / unschedulable counts of V1Pod objects."""
    ready = starting = unsched = 0
    for p in pods:
        if p.metadata and p.metadata.deletion_timestamp is not None:
            continue
        phase = p.status.phase if p.status else None
        if phase in ("Succeeded", "Failed"):
            continue
        if _cond(p, "Ready") == "True":
            ready += 1
        elif _cond(p, "PodScheduled") == "False":
            unsched += 1
        else:
            starting += 1
    return PodCounts(ready, starting, unsched)

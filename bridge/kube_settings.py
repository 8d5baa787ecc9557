"""Where kisim's Kubernetes actuator finds the cluster and how careful it is with it.

Kept apart from ``kisim.core.config.Scenario`` on purpose: a scenario describes an experiment
(and fully determines a twin run); these settings describe *which* cluster runs it. The
defaults match ``manifests/`` and ``scripts/cluster-up.sh``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Pool = Literal["gpu", "cpu"]


class KubeSettings(BaseModel):
    """Cluster address, object names and safety knobs of `bridge.kube.KubeActuator`."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kubeconfig: Path | None = Field(
        None, description="kubeconfig file; None: $KUBECONFIG or ~/.kube/config."
    )
    context: str | None = Field(None, description="kubeconfig context; None: current context.")
    in_cluster: bool = Field(
        False, description="Use the pod's ServiceAccount instead of a kubeconfig."
    )
    namespace: str = Field("kisim", min_length=1, description="Namespace of every object.")
    deployments: dict[Pool, str] = Field(
        default_factory=lambda: {"gpu": "triton-gpu", "cpu": "triton-cpu"},
        description="Deployment scaled for each pool.",
    )
    pool_urls: dict[Pool, str] = Field(
        default_factory=lambda: {"gpu": "http://127.0.0.1:30800", "cpu": "http://127.0.0.1:30810"},
        description="Triton HTTP base URL per pool as seen by the load generator (NodePorts).",
    )
    hpa_prefix: str = Field(
        "kisim-", description="Name prefix of HPAs kisim creates (<prefix><deployment>)."
    )
    dry_run: bool = Field(
        False, description="Read the cluster, print every change it would make, change nothing."
    )
    request_timeout_s: float = Field(10.0, gt=0, description="Per-request timeout.")
    retries: int = Field(
        5, ge=0, description="Extra attempts after a 5xx, 429 or connection error."
    )
    backoff_initial_s: float = Field(0.5, ge=0, description="First retry delay; doubles.")
    backoff_max_s: float = Field(8.0, ge=0, description="Cap of one retry delay.")
    conflict_retries: int = Field(
        5, ge=0, description="Re-read-and-retry rounds after 409 Conflict."
    )
    ready_timeout_s: float = Field(
        600.0, ge=0, description="start() waits this long for the initial replicas; 0: no wait."
    )
    poll_interval_s: float = Field(2.0, gt=0, description="Readiness polling period.")

    @field_validator("kubeconfig")
    @classmethod
    def _home(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else None

    @model_validator(mode="after")
    def _urls(self) -> KubeSettings:
        for pool, url in self.pool_urls.items():
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"pool_urls.{pool}: '{url}' is not an http(s) URL")
        return self

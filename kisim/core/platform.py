"""The scenario's optional ``platform:`` section: the shared ML platform around the service.

A scenario without it runs the single-service twin exactly as before. With it, the twin also
runs a shared cluster (`twin.platform`): node pools scaled by the Cluster Autoscaler (spot
ones among them), several inference models (each on its own calibration device), batch
workflow DAGs from tenants with quotas, priority classes with preemption, fractional GPUs
and a result cache. Defaults that come from an upstream component name it here; the
mechanisms that use them name their source in `twin.platform`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import Field, model_validator

from kisim.core.devices import Calibration, NonNeg, Pos, StrictModel

NAME = re.compile(r"^[a-z][a-z0-9]*$")
"""Tenant, model, node-pool and workflow names: they become ``tenant_<name>_...`` keys."""

Annotated01 = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
"""A fraction in [0, 1]."""

QUALITIES: tuple[str, ...] = ("low", "medium", "high")
"""Input quality classes of the quality-assessment step (conditional DAG paths)."""


class PriorityClassSpec(StrictModel):
    """A `scheduling.k8s.io/v1` PriorityClass."""

    value: int = Field(description="Priority; higher is more important.")
    preemption_policy: Literal["PreemptLowerPriority", "Never"] = Field(
        "PreemptLowerPriority", description="PriorityClass.preemptionPolicy (API default)."
    )


def _default_priorities() -> dict[str, PriorityClassSpec]:
    # system-critical at 1000000000, the highest value a user PriorityClass may have (larger
    # ones are reserved for system-cluster-critical and system-node-critical: Kubernetes docs,
    # "Pod Priority and Preemption"); the others are the platform's own choice. The manifests
    # name it platform-system-critical: the "system-" prefix is reserved for Kubernetes.
    return {"system-critical": PriorityClassSpec(value=1_000_000_000),
            "interactive": PriorityClassSpec(value=100_000),
            "batch": PriorityClassSpec(value=1_000),
            "maintenance": PriorityClassSpec(value=0, preemption_policy="Never")}  # fmt: skip


class GPUSharing(StrictModel):
    """How a node's GPUs are shared (NVIDIA device plugin / GPU operator)."""

    mode: Literal["none", "time-slicing", "mps", "mig"] = Field(
        "none", description="none: one pod per GPU; time-slicing / mps: `replicas` slots per "
        "GPU; mig: the GPU is cut into `mig_profiles` instances.",
    )
    replicas: int = Field(
        1, ge=1, description="sharing.timeSlicing (or .mps) resources[].replicas.")
    mig_profiles: list[str] = Field(
        default_factory=list, description="MIG instances per GPU, e.g. [3g.20gb, 2g.10gb, "
        "1g.5gb, 1g.5gb] on an A100-40GB (twin.platform.gpu_share.A100_40GB).",
    )


class NodePoolSpec(StrictModel):
    """A Cluster Autoscaler node group of identical nodes."""

    cpu: Pos = Field(description="Allocatable cores per node.")
    memory_gib: Pos = Field(description="Allocatable memory per node, GiB.")
    gpus: int = Field(0, ge=0, description="Physical GPUs per node.")
    gpu_device: str | None = Field(None, description="Calibration device of its GPUs.")
    sharing: GPUSharing = Field(default_factory=GPUSharing)
    nodes: int = Field(1, ge=0, description="Nodes at the start.")
    min_nodes: int = Field(0, ge=0, description="--nodes=min:max:group, min.")
    max_nodes: int = Field(10, ge=0, description="--nodes=min:max:group, max.")
    spot: bool = Field(False, description="Spot capacity: cheaper, interrupted.")
    spot_price_factor: Annotated01 = Field(
        0.35, description="Spot price / on-demand price (assumption: AWS advertises 'up to "
        "90 % off'; g4dn spot in us-east-1 has been ~30-40 % of on demand).",
    )
    interruptions_per_hour: NonNeg = Field(
        0.0, description="Mean spot interruptions per node-hour (Poisson; spot only).")
    notice_s: NonNeg = Field(120.0, description="Interruption notice (AWS: two minutes).")
    provisioning_s: NonNeg = Field(
        90.0, description="Node creation -> Ready (assumption: cloud VM boot + kubelet join).")
    expander_priority: int = Field(0, description="Priority for `--expander=priority`.")

    @model_validator(mode="after")
    def _bounds(self) -> NodePoolSpec:
        if not self.min_nodes <= self.nodes <= self.max_nodes:
            raise ValueError("nodes must lie in min_nodes..max_nodes")
        if self.gpus and self.gpu_device is None:
            raise ValueError("gpu_device: a pool with GPUs names its calibration device")
        return self


class AutoscalerSpec(StrictModel):
    """Cluster Autoscaler flags; defaults are its documented defaults (cluster-autoscaler
    FAQ, "What are the parameters to CA?")."""

    enabled: bool = True
    scan_interval_s: Pos = Field(10.0, description="--scan-interval (10s).")
    scale_down_utilization_threshold: Annotated01 = Field(
        0.5, description="--scale-down-utilization-threshold (0.5).")
    scale_down_unneeded_time_s: NonNeg = Field(600.0, description="--scale-down-unneeded-time.")
    scale_down_delay_after_add_s: NonNeg = Field(600.0, description="--scale-down-delay-after-add.")
    expander: Literal["random", "least-waste", "most-pods", "priority"] = Field(
        "random", description="--expander (default random).")


class ModelSpec(StrictModel):
    """An inference model served by its own Deployment of Triton replicas."""

    tenant: str
    device: str = Field(description="Calibration device (its own service curve).")
    node_pool: str = Field(description="nodeSelector: the node pool its pods run on.")
    replicas: int = Field(1, ge=0)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(4, ge=0)
    cpu: Pos = 1.0
    memory_gib: Pos = 2.0
    gpu: int = Field(0, ge=0, description="nvidia.com/gpu slots (a shared slot when sharing).")
    max_batch_size: int = Field(8, ge=1)
    max_queue_size: int = Field(
        0, ge=0, description="default_queue_policy.max_queue_size; 0 = unbounded.")
    rate_rps: NonNeg = Field(description="Mean Poisson arrival rate at load level 1.")
    follow_pattern: bool = Field(
        True, description="Scale the rate by the scenario's load pattern (level / its max).")
    slo_ms: Pos = 100.0
    priority_class: str = "interactive"
    hpa_target: Annotated01 | None = Field(
        0.6, description="HPA on busy fraction (target); null = fixed replicas.")
    pdb_min_available: int = Field(0, ge=0, description="PodDisruptionBudget minAvailable.")


class RetrySpec(StrictModel):
    """Argo `retryStrategy` with `backoff` (duration, factor, maxDuration as a cap)."""

    limit: int = Field(2, ge=0)
    backoff_s: NonNeg = Field(10.0, description="backoff.duration.")
    factor: Pos = Field(2.0, description="backoff.factor.")
    max_backoff_s: NonNeg = Field(300.0, description="backoff.cap on one delay.")


class StepSpec(StrictModel):
    """One DAG task: a pod with requests and a duration distribution."""

    name: str
    depends: list[str] = Field(default_factory=list)
    when: list[Literal["low", "medium", "high"]] | None = Field(
        None, description="Run only for these input qualities (else skipped).")
    assesses_quality: bool = Field(False, description="This step decides the input quality.")
    cpu: Pos = 1.0
    memory_gib: Pos = 2.0
    gpu: int = Field(0, ge=0)
    node_pool: str | None = Field(None, description="nodeSelector; null = any fitting pool.")
    duration_s: Pos = Field(description="Mean duration on a dedicated device.")
    duration_cv: NonNeg = 0.3
    fail_prob: Annotated01 = 0.0
    retry: RetrySpec = Field(default_factory=RetrySpec)
    checkpoint_s: Pos | None = Field(None, description="Checkpoint period; null = none.")
    cacheable: bool = Field(False, description="Result cached by (input, step).")


class WorkflowSpec(StrictModel):
    """A WorkflowTemplate: a DAG of steps."""

    steps: list[StepSpec] = Field(min_length=1)
    quality: dict[Literal["low", "medium", "high"], NonNeg] = Field(
        default_factory=lambda: {"low": 0.2, "medium": 0.5, "high": 0.3},
        description="Probability of each input quality.")
    priority_class: str = "batch"

    @model_validator(mode="after")
    def _dag(self) -> WorkflowSpec:
        seen: set[str] = set()
        for s in self.steps:  # listed in a topological order: no cycles by construction
            for d in s.depends:
                if d not in seen:
                    raise ValueError(f"steps.{s.name}.depends: '{d}' is not an earlier step")
            if s.name in seen:
                raise ValueError(f"steps.{s.name}: duplicate step name")
            seen.add(s.name)
        if sum(self.quality.values()) <= 0:
            raise ValueError("quality: the probabilities sum to 0")
        return self


class TenantSpec(StrictModel):
    """A tenant's queue (Kueue ClusterQueue / KAI queue) and its workflow arrivals."""

    quota_cpu: NonNeg = Field(8.0, description="Guaranteed (nominal / deserved) cores.")
    quota_gpu: NonNeg = Field(1.0, description="Guaranteed GPU slots.")
    over_quota_weight: NonNeg = Field(1.0, description="Share of unused quota it may borrow.")
    workflows: dict[str, NonNeg] = Field(
        default_factory=dict, description="Workflow template -> arrivals per hour.")
    users: int = Field(4, ge=1, description="Users submitting (uniformly).")
    per_user_running: int = Field(2, ge=1, description="Workflows one user may run at once.")
    max_queued: int = Field(50, ge=0, description="Admission: queued workflows beyond are "
                            "rejected.")  # fmt: skip
    borrowing_limit_cpu: NonNeg | None = Field(
        None, description="Kueue borrowingLimit on cores beyond the quota; null = unlimited, "
        "0 = a static quota (KAI-style: no over-quota use).")
    borrowing_limit_gpu: NonNeg | None = Field(
        None, description="Kueue borrowingLimit on GPU slots; null = unlimited.")
    repeat_input_prob: Annotated01 = Field(
        0.2, description="Chance a workflow reprocesses an earlier input (cache hits).")


class CacheSpec(StrictModel):
    """Result cache of intermediate step outputs (LRU)."""

    capacity: int = Field(200, ge=0, description="Entries; 0 = no cache.")


class PrescalerSpec(StrictModel):
    """A predictive pre-scaler: every `period_s` each model's replica floor follows the load
    forecast `horizon_s` ahead (here the scenario's own load pattern: a perfect forecast, so
    a ceiling for forecast-based pre-scaling), so pods — and through the Cluster Autoscaler
    their nodes — are requested before the load arrives."""

    enabled: bool = False
    horizon_s: NonNeg = Field(
        240.0, description="Look-ahead: node provisioning + model start-up + a scan "
        "(150 + ~40 + 10 s in mixed-platform, rounded up).")
    period_s: Pos = Field(15.0, description="How often floors are recomputed.")
    target_util: Annotated01 = Field(0.6, description="Busy fraction aimed at per replica.")


class PlatformConfig(StrictModel):
    """The shared platform: node pools, autoscaler, models, workflows, tenants."""

    priority_classes: dict[str, PriorityClassSpec] = Field(default_factory=_default_priorities)
    node_pools: dict[str, NodePoolSpec] = Field(min_length=1)
    autoscaler: AutoscalerSpec = Field(default_factory=AutoscalerSpec)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    workflows: dict[str, WorkflowSpec] = Field(default_factory=dict)
    tenants: dict[str, TenantSpec] = Field(min_length=1)
    cache: CacheSpec = Field(default_factory=CacheSpec)
    prescaler: PrescalerSpec = Field(default_factory=PrescalerSpec)
    termination_grace_s: NonNeg = Field(30.0, description="terminationGracePeriodSeconds "
                                        "(Kubernetes default 30).")  # fmt: skip

    @model_validator(mode="after")
    def _refs(self) -> PlatformConfig:
        for kind, names in (("node_pools", self.node_pools), ("models", self.models),
                            ("workflows", self.workflows), ("tenants", self.tenants)):  # fmt: skip
            for n in names:
                if not NAME.match(n):
                    raise ValueError(f"{kind}.{n}: lower-case letters and digits, from a letter")
        for m, spec in self.models.items():
            if spec.tenant not in self.tenants:
                raise ValueError(f"models.{m}.tenant: '{spec.tenant}' is not a tenant")
            if spec.node_pool not in self.node_pools:
                raise ValueError(f"models.{m}.node_pool: '{spec.node_pool}' is not a node pool")
            if spec.priority_class not in self.priority_classes:
                raise ValueError(f"models.{m}.priority_class: unknown '{spec.priority_class}'")
            if not spec.min_replicas <= spec.replicas <= spec.max_replicas:
                raise ValueError(f"models.{m}.replicas must lie in min_replicas..max_replicas")
        for w, wf in self.workflows.items():
            if wf.priority_class not in self.priority_classes:
                raise ValueError(f"workflows.{w}.priority_class: unknown '{wf.priority_class}'")
            for s in wf.steps:
                if s.node_pool is not None and s.node_pool not in self.node_pools:
                    raise ValueError(f"workflows.{w}.steps.{s.name}.node_pool: "
                                     f"'{s.node_pool}' is not a node pool")  # fmt: skip
        for t, ts in self.tenants.items():
            for w in ts.workflows:
                if w not in self.workflows:
                    raise ValueError(f"tenants.{t}.workflows: '{w}' is not a workflow")
        return self

    def check_devices(self, calibration: Calibration) -> None:
        """Every model and GPU node pool names a device of the scenario's calibration."""
        for m, spec in self.models.items():
            if spec.device not in calibration.devices:
                raise ValueError(f"platform.models.{m}.device: '{spec.device}' is not in the "
                                 "calibration")  # fmt: skip
        for p, pool in self.node_pools.items():
            if pool.gpu_device is not None and pool.gpu_device not in calibration.devices:
                raise ValueError(f"platform.node_pools.{p}.gpu_device: '{pool.gpu_device}' is "
                                 "not in the calibration")  # fmt: skip


class PodPricing(Protocol):
    """What prices a pod-hour (`kisim.core.prices.Prices`)."""

    def pod_hour(self, device: str, cpu: float, memory_gib: float, gpu: int) -> float: ...


def node_hour_price(spec: NodePoolSpec, prices: PodPricing) -> float:
    """Money per node-hour of a pool: ``prices.pod_hour(gpu_device, cpu, memory, gpus)`` (the
    GPU share of a one-GPU instance plus vCPUs at the general-purpose rate) times
    ``spot_price_factor`` on spot. Providers bill from launch, so a node costs from its
    creation to its removal (`twin.platform.report`)."""
    price = prices.pod_hour(spec.gpu_device or "", spec.cpu, spec.memory_gib, spec.gpus)
    return price * (spec.spot_price_factor if spec.spot else 1.0)


@runtime_checkable
class PlatformReport(Protocol):
    """A backend that adds the platform's figures to a run's summary."""

    def platform_summary(self) -> dict[str, float]: ...


@runtime_checkable
class PlatformControl(Protocol):
    """A backend whose platform an outside controller can see and steer (the env's platform
    presets, `kisim.env.platform`: per-model replicas, node-pool floors, held tenant queues,
    GPU slots per model pod)."""

    def platform_state(self) -> dict[str, float]: ...

    def platform_control(self, replicas: dict[str, int] | None = None,
                         pool_floor: dict[str, int] | None = None,
                         hold: dict[str, bool] | None = None,
                         gpu: dict[str, int] | None = None) -> dict[str, int]: ...

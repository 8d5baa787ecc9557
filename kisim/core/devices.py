"""The calibration: how fast each device serves a batch, how its pods start (``kind: Calibration``).

Kept apart from the scenario schema (`kisim.core.config`), which refers to a calibration file:
a calibration describes hardware, fitted by `kisim calibrate` or derived from public
figures (its ``provenance`` says which); a scenario describes an experiment on it.
"""

from __future__ import annotations

import bisect
import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

API_VERSION = "kisim/v1"
Pos = Annotated[float, Field(gt=0, allow_inf_nan=False)]  # inf is no duration or rate
NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class StrictModel(BaseModel):
    """Unknown keys are errors; assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Dist(StrictModel):
    """A positive multiplier with mean 1 (service-time noise, overhead noise)."""

    kind: Literal["deterministic", "exponential", "lognormal"] = Field(
        "lognormal", description="Distribution family; `exponential` has cv 1 by definition."
    )
    cv: NonNeg = Field(0.1, description="Coefficient of variation (lognormal only).")


class ServiceCurve(StrictModel):
    """Execution time of one batch of size b on the device as calibrated.

    ``table_ms`` (measured points, linearly interpolated, linearly extrapolated)
    wins over the affine form ``base_ms + per_item_ms * (b - 1)``.
    """

    base_ms: Pos = Field(description="Execution time of a batch of one, ms.")
    per_item_ms: NonNeg = Field(0.0, description="Extra time per additional batch item, ms.")
    table_ms: dict[int, Pos] | None = Field(None, description="Measured {batch size: ms} points.")
    noise: Dist = Field(default_factory=Dist, description="Multiplicative noise per batch.")

    def time_ms(self, b: int) -> float:
        """Mean execution time of a batch of `b` items, ms."""
        if not self.table_ms:
            return self.base_ms + self.per_item_ms * (b - 1)
        pts = sorted(self.table_ms.items())
        if len(pts) == 1:
            return max(pts[0][1] + self.per_item_ms * (b - pts[0][0]), 1e-6)
        i = min(max(bisect.bisect_left([p[0] for p in pts], b), 1), len(pts) - 1)
        (b0, t0), (b1, t1) = pts[i - 1], pts[i]
        return max(t0 + (t1 - t0) * (b - b0) / (b1 - b0), 1e-6)


class StartupCalibration(StrictModel):
    """Pod start-up phases after the scheduler binds the pod."""

    schedule_s: NonNeg = Field(0.2, description="Scheduling latency: create -> bound.")
    container_start_s: NonNeg = Field(2.0, description="Image present: sandbox + container start.")
    model_load_s: NonNeg = Field(8.0, description="Triton start + model load, mean.")
    model_load_cv: NonNeg = Field(0.2, description="Lognormal cv of the model-load time.")
    readiness_initial_delay_s: NonNeg = Field(
        5.0, description="readinessProbe.initialDelaySeconds."
    )
    readiness_period_s: Pos = Field(5.0, description="readinessProbe.periodSeconds.")
    termination_grace_s: NonNeg = Field(30.0, description="terminationGracePeriodSeconds.")


class DeviceCalibration(StrictModel):
    """Everything the twin needs to know about one device class serving the model."""

    kind: Literal["gpu", "cpu"] = Field(description="Accelerator class of the device.")
    description: str = Field("", description="Human-readable hardware and model description.")
    service: ServiceCurve = Field(description="Batch execution time at `reference_cores`.")
    reference_cores: Pos = Field(2.0, description="CPU cores the service curve was measured with.")
    core_scaling: NonNeg = Field(
        0.0,
        description="Exponent e: time x (reference_cores / effective cores)^e. 0 for GPUs. "
        "With `core_scaling_per_doubling`, the exponent of a batch of one.",
    )
    core_scaling_per_doubling: float = Field(
        0.0,
        allow_inf_nan=False,
        description="Batch-size dependence of the core-scaling exponent: a batch of b items "
        "uses e(b) = max(core_scaling + this x log2(b), 0) (a fixed serial part per execution "
        "makes small batches gain less from more cores). 0 = one exponent for every size.",
    )
    sharing_penalty: NonNeg = Field(
        1.0, description="GPU time-slicing: slow-down per extra busy pod on the same GPU."
    )
    overhead_ms: NonNeg = Field(
        0.0, description="Per-request time outside queue and compute (HTTP, (de)serialisation)."
    )
    overhead_noise: Dist = Field(default_factory=Dist, description="Noise of `overhead_ms`.")
    host_sharing_penalty: NonNeg = Field(
        0.0,
        description="CPU replicas sharing one node's cores (no CPU limits, e.g. a single host): "
        "slow-down per execution of another replica busy on the same node. 0 = replicas "
        "never slow each other (CPU limits on dedicated cores).",
    )
    batch_merge_ms: NonNeg = Field(
        0.0,
        description="Dynamic batching: extra execution time per request merged into a batch "
        "beyond the first, ms (the backend gathers the separate requests' inputs and splits the "
        "outputs; an isolated batch of b items is one request and does not pay it). "
        "0 = batches cost the curve alone.",
    )
    overhead_busy_factor: NonNeg = Field(
        0.0,
        description="Overhead contention: a request that completes while its replica still has "
        "work (batches executing or queued, as a share of its instances) takes overhead x "
        "(1 + this x share); the front end and the client share the replica's cores. "
        "0 = constant overhead.",
    )
    overhead_per_batch_position_ms: NonNeg = Field(
        0.0,
        description="The responses of a completed batch leave one after another: the j-th "
        "(j = 0 .. b-1, in arrival order) takes overhead + j x this, ms (the front end and a "
        "single load-generator process handle them serially; issue 15's sweeps: 1.4 ms). "
        "0 = every request of a batch takes the same overhead.",
    )
    idle_slowdown: NonNeg = Field(
        0.0,
        description="Pacing: an execution that starts on an idle replica takes "
        "x (1 + this x (1 - exp(-gap / idle_tau_ms))), gap = time since its last execution "
        "ended (one still busy instance keeps the replica warm); back to back it takes the "
        "curve alone. Caches and the runtime's threads cool while the instance waits for "
        "think-time-paced requests (issue 15: 1-thread ONNX Runtime, docs/calibration.md). "
        "0 = the execution time does not depend on the pacing.",
    )
    idle_tau_ms: Pos = Field(
        50.0,
        description="Time constant of `idle_slowdown`, ms (how long an idle replica takes to "
        "cool); used only when idle_slowdown > 0.",
    )
    cpu_per_request_ms: NonNeg = Field(
        0.0, description="CPU core-ms the server front end spends per request."
    )
    memory_base_gib: NonNeg = Field(0.8, description="Resident memory of an idle ready pod.")
    memory_per_item_gib: NonNeg = Field(0.0, description="Extra memory per in-flight batch item.")
    startup: StartupCalibration = Field(default_factory=StartupCalibration)

    def core_exponent(self, b: int) -> float:
        """Core-scaling exponent of a batch of `b` items (`core_scaling` when the
        per-doubling term is 0, exactly)."""
        if self.core_scaling_per_doubling == 0.0:
            return self.core_scaling
        return max(self.core_scaling + self.core_scaling_per_doubling * math.log2(b), 0.0)


class Calibration(StrictModel):
    """A set of device models with a statement of where every number came from."""

    apiVersion: Literal["kisim/v1"] = API_VERSION
    kind: Literal["Calibration"] = "Calibration"
    name: str
    provenance: str = Field(min_length=1, description="Where every figure came from.")
    devices: dict[str, DeviceCalibration]

"""What `calibration.calibrate` works on and returns: one device's inputs during its fit, per
device every fit with its uncertainty (for the report and its figures), and the assembled
`Calibration`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calibration import fit as F
from calibration.bundle import Bundle
from calibration.concurrency import ConcurrencyFit
from calibration.idle_gap import IdleGapFit
from calibration.service_form import FormChoice
from kisim.core.config import Calibration, DeviceCalibration


@dataclass
class DeviceWork:
    """One device's inputs while it is fitted, and the lists every step of its fit appends to in
    order (`calibration.calibrate`).

    The steps run in a fixed order because they share `rng` (each bootstrap draws from it)
    and because `from_prior`, `notes` and `warnings` are reported in the order written:
    reordering them changes the fitted numbers or the provenance.
    """

    key: str
    kind: str
    group: list[tuple[Bundle, str]]
    prior: DeviceCalibration
    rng: np.random.Generator
    n_boot: int
    warnings: list[str]
    from_prior: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class DeviceFit:
    key: str
    kind: str
    pools: list[tuple[str, str]]  # (bundle, pool)
    reference_cores: float
    curve: F.CurveFit
    in_load: F.InLoad
    concurrency: ConcurrencyFit | None
    chunks: F.Chunks
    overhead: F.Overhead
    startup: F.Startup
    cpu_per_request: F.Estimate | None
    memory_base: F.Estimate | None
    device: DeviceCalibration
    from_prior: list[str]
    notes: list[str] = field(default_factory=list)
    core_scaling: F.Estimate | None = None  # from isolated times at two core counts
    # (b = 1 exponent, per doubling of b) when the exponent depends on the batch size
    core_scaling_by_size: tuple[F.Estimate, F.Estimate] | None = None
    batch_merge: F.Estimate | None = None  # per merged request, from batched pools' counters
    # the in-load gap as a factor k or an additive per-execution cost, by held-out likelihood
    service_form: FormChoice | None = None
    idle_gap: IdleGapFit | None = None  # execution time after an idle gap (the pacing)


@dataclass
class CalibrationResult:
    calibration: Calibration
    devices: dict[str, DeviceFit]
    bundles: list[Bundle]
    warnings: list[str]
    prior_path: str | None

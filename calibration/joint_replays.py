"""The steps of a device fit that replay the bundles in the twin (`fit_concurrency`): the batch
merge cost of the batched pools, then GPU time-slicing, CPU core scaling or host sharing —
each kept only where the replays identify it, the prior's value named otherwise."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from calibration import fit as F
from calibration.concurrency import ConcurrencyFit, fit_concurrency
from calibration.device_fit import DeviceWork
from kisim.core.config import DeviceCalibration, ServiceCurve


class ReplayBasis(NamedTuple):
    """What the joint replays of the pools (`fit_concurrency`) start from."""

    ref_cores: float
    others: dict[str, DeviceCalibration]  # the other devices the bundles served on (prior)
    offset: tuple[float, float] | None  # (log k, its SE) from replicas without concurrency
    rel_se: Callable[[np.ndarray], np.ndarray] | None  # the curve's relative SE per size

    def fit(self, d: DeviceWork, device: DeviceCalibration, attr: str) -> ConcurrencyFit | None:
        return fit_concurrency(
            d.key, d.kind, d.group, device, self.ref_cores, self.others, self.offset,
            self.rel_se, attr=attr,
        )  # fmt: skip


def replay_priors(
    curve: F.CurveFit, in_load: F.InLoad, k: float
) -> tuple[tuple[float, float] | None, Callable[[np.ndarray], np.ndarray] | None]:
    """What the replays may lean on: the curve's level under load from replicas without
    concurrency (log k ratio, SE), and the isolated curve's relative SE per batch size."""
    offset = None
    if len(in_load.weight) and math.isfinite(in_load.k.lo) and in_load.k.lo > 0:
        lk = in_load.k
        offset = (math.log(lk.value / k), (math.log(lk.hi) - math.log(lk.lo)) / 3.92)
    rel_se = None
    if curve.source == "isolated" and np.all(np.isfinite(curve.mean_lo)):
        se = (curve.mean_hi - curve.mean_lo) / 3.92 / curve.means
        sizes = curve.sizes.astype(float)
        rel_se = lambda b: np.interp(b, sizes, se)  # noqa: E731
    return offset, rel_se


def fit_batch_merge(
    d: DeviceWork, device: DeviceCalibration, curve: F.CurveFit, replay: ReplayBasis
) -> tuple[DeviceCalibration, F.Estimate | None]:
    """The cost per request the batcher merges (never paid in isolation, where a batch is one
    request), from replays of the batched pools; kept only when significantly positive."""
    if curve.source != "isolated":
        return device, None
    mfit = replay.fit(d, device, "batch_merge_ms")
    merge = mfit.theta if mfit is not None else None
    if merge is not None and math.isfinite(merge.lo) and merge.lo > 0:
        device = device.model_copy(update={"batch_merge_ms": merge.value})
        d.notes.append(
            f"batched pools run {merge.value:.2f} ms per request merged into a batch "
            f"(95% CI {merge.lo:.2f}..{merge.hi:.2f}) beyond k x the isolated curve"
        )
    return device, merge


def fit_sharing(
    d: DeviceWork,
    device: DeviceCalibration,
    curve: F.CurveFit,
    in_load: F.InLoad,
    replay: ReplayBasis,
    attr: str,
) -> tuple[DeviceCalibration, ConcurrencyFit | None]:
    """The concurrency parameter `attr` from the joint replays (GPU time-slicing, CPU core
    scaling or host sharing); when no replica-level k was measured, the replays' joint
    level also sets k (recorded in `in_load`, which is updated in place)."""
    conc = replay.fit(d, device, attr)
    if conc is None:
        d.from_prior.append(attr)
        if attr == "core_scaling" and device.core_scaling_per_doubling != 0.0:
            d.from_prior.append("core_scaling_per_doubling")
        what = "one replica per host" if attr == "host_sharing_penalty" else (
            f"one instance per replica at {replay.ref_cores:g} cores")  # fmt: skip
        d.notes.append(
            f"{attr} not identifiable: every pool ran {what}; kept at "
            f"{getattr(device, attr):g} (prior)"
        )
        return device, None
    update: dict[str, object] = {attr: conc.theta.value}
    if attr == "core_scaling":  # the replays fit one exponent for every batch size
        update["core_scaling_per_doubling"] = 0.0
    if not len(in_load.weight) and curve.source == "isolated":  # k only from the joint fit
        in_load.k, in_load.why = conc.k, F.NOT_SIGNIFICANT
        if not conc.k.contains(1.0) and abs(conc.k.value - 1) >= F.K_MIN_EFFECT:
            in_load.k_applied, in_load.why = conc.k.value, "the joint replays' level"
            update["service"] = _scaled(device.service, conc.k.value)
            in_load.notes.append(f"the curve is scaled by the joint level {conc.k.value:.3f}")
    d.notes += conc.notes
    return device.model_copy(update=update), conc


def _scaled(svc: ServiceCurve, k: float) -> ServiceCurve:
    table = {b: t * k for b, t in svc.table_ms.items()} if svc.table_ms else None
    return svc.model_copy(
        update={"base_ms": svc.base_ms * k, "per_item_ms": svc.per_item_ms * k, "table_ms": table}
    )

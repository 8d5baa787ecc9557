"""`calibrate(bundles)`: the fits of `calibration.fit` per device, assembled into a `Calibration`.

Devices are grouped by the manifests' device kind (`cpu`, `gpu`); each becomes one entry
of the calibration (key = the kind, or a name given with `device_names`). A parameter
the bundles cannot identify keeps the prior calibration's value, and the provenance
says which ones did.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple

import numpy as np

from calibration import fit as F
from calibration.bundle import Bundle
from calibration.concurrency import concurrency_attr
from calibration.device_fit import CalibrationResult, DeviceFit, DeviceWork
from calibration.idle_gap import fit_pacing
from calibration.isolated import isolated_overheads, isolated_rows
from calibration.joint_replays import ReplayBasis, fit_batch_merge, fit_sharing, replay_priors
from calibration.provenance import calibration_provenance
from calibration.service_form import FormChoice, choose_form
from kisim.core.config import Calibration, DeviceCalibration, Dist, ServiceCurve, StartupCalibration
from kisim.core.errors import TraceError

LOCAL_PROBE = (0.0, 0.25)  # the local bridge probes readiness every 0.25 s (docs/bridge.md)


def _prior_device(prior: Calibration | None, kind: str) -> DeviceCalibration | None:
    if prior is None:
        return None
    return next((d for d in prior.devices.values() if d.kind == kind), None)


def calibrate(
    bundles: list[Bundle],
    name: str,
    prior: Calibration | None = None,
    prior_path: str | None = None,
    device_names: dict[str, str] | None = None,
    n_boot: int = 300,
    seed: int = 0,
) -> CalibrationResult:
    """Fit every device the bundles served on; `TraceError` when there is nothing to fit."""
    if not bundles:
        raise TraceError("no bundles given")
    names = [b.name for b in bundles]
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise TraceError(f"bundle name(s) used twice: {', '.join(dup)} (manifest.yaml `name`)")
    rng = np.random.default_rng(seed)
    warnings = [w for b in bundles for w in b.warnings]
    groups: dict[str, list[tuple[Bundle, str]]] = {}
    for b in bundles:
        for pool, cfg in b.manifest.pools.items():
            groups.setdefault(cfg.device, []).append((b, pool))
    devices: dict[str, DeviceFit] = {}
    for kind, group in sorted(groups.items()):
        key = (device_names or {}).get(kind, kind)
        others = {k: d for k in groups if k != kind and (d := _prior_device(prior, k)) is not None}
        devices[key] = _fit_device(
            key, kind, group, _prior_device(prior, kind), others, rng, n_boot, warnings
        )
    cal = Calibration(
        name=name,
        provenance=calibration_provenance(bundles, devices, prior_path),
        devices={k: d.device for k, d in devices.items()},
    )
    return CalibrationResult(cal, devices, bundles, warnings, prior_path)


class _Isolated(NamedTuple):
    """The isolated measurements (`service_times.csv`) of the device, one entry per row."""

    sizes: np.ndarray
    ms: np.ndarray
    cores: np.ndarray
    bundle: np.ndarray


def _fit_device(
    key: str,
    kind: str,
    group: list[tuple[Bundle, str]],
    prior: DeviceCalibration | None,
    others: dict[str, DeviceCalibration],
    rng: np.random.Generator,
    n_boot: int,
    warnings: list[str],
) -> DeviceFit:
    """Fit one device in named steps: curve, in-load factor, overhead, start-up, resources,
    core scaling, then the joint replays (batch merge cost, concurrency)."""
    prior = prior or DeviceCalibration(kind=kind, service=ServiceCurve(base_ms=1.0))  # type: ignore[arg-type]
    d = DeviceWork(key, kind, group, prior, rng, n_boot, warnings)
    _warn_mixed_hardware(d)
    iso = _Isolated(*isolated_rows(group, kind, warnings))
    chunks = F.chunk_counters(group)
    curve, ref = _fit_curve(d, iso, chunks)
    cv = curve.cv.value if math.isfinite(curve.cv.value) else prior.service.noise.cv
    in_load = _fit_in_load(d, curve, chunks, ref, cv)
    form = _choose_form(d, curve, chunks, ref, cv, in_load)
    additive = form is not None and form.chosen == "additive"
    if additive:
        in_load.k_applied = 1.0  # the gap is a per-execution cost, not a factor
        in_load.why = "the gap is the additive per-execution cost instead"
    k = in_load.k_applied
    ovh = _fit_overhead(d, cv)
    idle = None  # not with the additive form: both would explain the same gap
    if curve.source == "isolated" and not additive:  # spawned: the other fits' draws stay
        idle = fit_pacing(d.group, chunks, ref, d.kind, curve, cv, _overhead_ms(ovh),
                          d.rng.spawn(1)[0], max(d.n_boot // 2, 50))  # fmt: skip
    if idle is not None and idle.applied:  # k: the level back to back; the gap does the rest
        in_load.k_applied = k = idle.k_warm.value
        in_load.why = "the back-to-back level k0, with the idle-gap term"
    st, startup = _fit_startup(d)
    cpu_req, mem = _fit_resources(d, curve, k)
    service = _service(d, curve, k)
    if additive:
        assert form is not None
        service = _shifted(d, service, form)
    device = DeviceCalibration(
        kind=kind,  # type: ignore[arg-type]
        description=_description(group),
        service=service,
        reference_cores=ref,
        core_scaling=0.0 if kind == "gpu" else prior.core_scaling,
        # the prior's exponent is one of a pair: its batch-size slope goes with it
        core_scaling_per_doubling=0.0 if kind == "gpu" else prior.core_scaling_per_doubling,
        sharing_penalty=prior.sharing_penalty,
        overhead_ms=max(_overhead_ms(ovh), 0.0),
        overhead_busy_factor=ovh.busy_factor.value if ovh.busy_factor else 0.0,
        overhead_per_batch_position_ms=ovh.per_position.value if ovh.per_position else 0.0,
        idle_slowdown=idle.slowdown.value if idle is not None and idle.applied else 0.0,
        idle_tau_ms=idle.tau_ms.value if idle is not None and idle.applied else 50.0,
        overhead_noise=Dist(kind="lognormal", cv=max(ovh.noise_cv.value, 0.0))
        if ovh.noise_cv
        else prior.overhead_noise,
        cpu_per_request_ms=cpu_req.value
        if cpu_req and math.isfinite(cpu_req.value)
        else prior.cpu_per_request_ms,
        memory_base_gib=mem.value if mem else prior.memory_base_gib,
        memory_per_item_gib=prior.memory_per_item_gib,
        startup=startup,
    )
    device, scaling, by_size = _fit_core_scaling(d, device, iso, ref)
    offset, rel_se = replay_priors(curve, in_load, k)
    if offset is not None and idle is not None and idle.applied:  # k0 x (1 + g W) is the level
        offset = (0.0, offset[1])
    if additive and offset is not None:  # the level under load vs the shifted curve at b = 1
        lk = in_load.k.value * curve.time_ms(np.array([1.0]))[0]
        offset = (math.log(lk / device.service.time_ms(1)), offset[1])
    replay = ReplayBasis(ref, others, offset, rel_se)
    device, merge = fit_batch_merge(d, device, curve, replay)
    attr = concurrency_attr(kind, scaling is not None)
    device, conc = fit_sharing(d, device, curve, in_load, replay, attr)
    d.notes += curve.notes + in_load.notes + ovh.notes + st.notes
    d.notes += form.notes if form is not None else []
    d.notes += idle.notes if idle is not None else []
    return DeviceFit(
        key=key,
        kind=kind,
        pools=[(bun.name, pool) for bun, pool in group],
        reference_cores=ref,
        curve=curve,
        in_load=in_load,
        concurrency=conc,
        chunks=chunks,
        overhead=ovh,
        startup=st,
        cpu_per_request=cpu_req,
        memory_base=mem,
        device=device,
        from_prior=d.from_prior,
        notes=d.notes,
        core_scaling=scaling,
        core_scaling_by_size=by_size,
        batch_merge=merge,
        service_form=form,
        idle_gap=idle,
    )


def _choose_form(
    d: DeviceWork, curve: F.CurveFit, chunks: F.Chunks, ref: float, cv: float, in_load: F.InLoad
) -> FormChoice | None:
    """Multiplicative k or an additive per-execution cost, by held-out likelihood on the
    chunks of lone instances (`calibration.service_form`). Its bootstrap draws from a
    generator spawned from `d.rng`, so the other fits' draws are what they were."""
    if curve.source != "isolated":
        return None
    alone = (chunks.instances == 1) & (
        (chunks.cores == ref) if d.kind == "cpu" else np.ones(len(chunks), bool)
    )
    level = in_load.weight > 0 if len(in_load.weight) == np.count_nonzero(alone) else None
    rng = d.rng.spawn(1)[0]
    return choose_form(chunks.select(alone), curve, cv, rng, max(d.n_boot // 2, 50), level)


def _shifted(d: DeviceWork, svc: ServiceCurve, form: FormChoice) -> ServiceCurve:
    """The isolated curve plus the additive per-execution cost (applied when its interval
    excludes 0 and it is at least `K_MIN_EFFECT` of a batch of one, as k is)."""
    a = form.a_level or form.a
    t1 = svc.time_ms(1)
    if not (math.isfinite(a.lo) and not a.contains(0.0) and abs(a.value) >= F.K_MIN_EFFECT * t1):
        d.notes.append(f"additive per-execution cost {a.fmt(' ms')} not applied (CI spans 0)")
        return svc
    d.notes.append(
        f"the counters show {a.value:+.2f} ms per execution vs the isolated curve (95% CI "
        f"{a.lo:.2f}..{a.hi:.2f}): added to every batch size, the per-item cost unchanged"
    )
    table = {b: max(t + a.value, 1e-6) for b, t in svc.table_ms.items()} if svc.table_ms else None
    return svc.model_copy(update={"base_ms": max(svc.base_ms + a.value, 1e-6), "table_ms": table})


def _warn_mixed_hardware(d: DeviceWork) -> None:
    """Bundles from different machines are fitted as one device, but the user should know."""
    hw = {(b.manifest.hardware.cpu_model, b.manifest.hardware.gpu_model) for b, _ in d.group}
    if len(hw) > 1:
        d.warnings.append(
            f"device {d.key!r}: bundles from different hardware {sorted(map(str, hw))} "
            "are fitted together"
        )


def _fit_curve(d: DeviceWork, iso: _Isolated, chunks: F.Chunks) -> tuple[F.CurveFit, float]:
    """The service curve and the core count it holds at: from the isolated measurements at
    the most common core count, else from the counters of lone instances."""
    if len(iso.sizes):
        ref = float(Counter(iso.cores.tolist()).most_common(1)[0][0])
        if np.any(iso.cores != ref):
            d.warnings.append(
                f"device {d.key!r}: isolated measurements at other core counts than "
                f"{ref:g} are used for core_scaling only, not for the curve"
            )
        at_ref = iso.cores == ref
        src = iso.bundle[at_ref].astype(str)
        return F.fit_isolated(iso.sizes[at_ref], iso.ms[at_ref], d.rng, d.n_boot, src), ref
    if len(chunks):
        ref = float(Counter(chunks.cores.tolist()).most_common(1)[0][0])
        solo = (chunks.instances == 1) & (chunks.cores == ref)
        used = chunks.select(solo) if np.count_nonzero(solo) >= 5 else chunks
        curve = F.fit_curve_from_counters(used, d.prior.service.per_item_ms, d.rng, d.n_boot)
        d.from_prior.append("service.noise")
        return curve, ref
    raise TraceError(
        f"device {d.key!r}: neither service_times.csv rows nor Triton counter "
        f"chunks with >= {F.MIN_EXEC_PER_CHUNK} batches: nothing to fit the "
        "service time on"
    )


def _fit_in_load(
    d: DeviceWork, curve: F.CurveFit, chunks: F.Chunks, ref: float, cv: float
) -> F.InLoad:
    """How the counters' compute time under load differs from the isolated curve (k), on
    lone instances (at the reference cores on CPUs); k = 1 when the curve is the counters'."""
    if curve.source != "isolated":
        return F.InLoad(
            F.fixed(1.0, "curve fitted on the counters"), 1.0, np.empty(0), np.empty(0), 0
        )
    alone = (chunks.instances == 1) & (
        (chunks.cores == ref) if d.kind == "cpu" else np.ones(len(chunks), bool)
    )
    return F.fit_in_load(chunks.select(alone), curve, cv, d.rng, max(d.n_boot // 2, 50))


def _overhead_ms(ovh: F.Overhead) -> float:
    """The twin's overhead_ms: the first response's when the batch position applies, the
    idle replica's when the busy share does, else the mean."""
    if ovh.per_position is not None and ovh.first is not None:
        return ovh.first.value
    return ovh.idle.value if ovh.busy_factor and ovh.idle else ovh.total.value


def _fit_overhead(d: DeviceWork, cv: float) -> F.Overhead:
    """Time outside Triton's queue and compute; its noise from isolated requests when the
    bundles have them (cleaner than latencies under load)."""
    parts = [F.pool_intervals(bun, pool) for bun, pool in d.group]
    has_req = all(
        "nv_inference_request_duration_us" in bun.counters[pool].inc for bun, pool in d.group
    )
    ovh = F.fit_overhead(parts, has_req, cv, d.prior.overhead_noise.cv, d.rng, d.n_boot)
    if ovh.total.value < 0:
        d.warnings.append(
            f"device {d.key!r}: client latency is shorter than Triton's queue + compute "
            f"({ovh.total.value:.2f} ms): clocks or units disagree; overhead set to 0"
        )
    bundles = {id(bb): bb for bb, _ in d.group}.values()
    iso_cv = F.fit_isolated_overhead_cv(
        [o for bun in bundles if (o := isolated_overheads(bun, d.kind)) is not None],
        d.rng, d.n_boot,
    )  # fmt: skip
    if iso_cv is not None:
        ovh.noise_cv = iso_cv  # the quiet intervals' verdict no longer applies
        ovh.notes = [n for n in ovh.notes if "requests in quiet intervals" not in n]
    if ovh.noise_cv is None:
        d.from_prior.append("overhead_noise")
    return ovh


def _fit_startup(d: DeviceWork) -> tuple[F.Startup, StartupCalibration]:
    """Pod start-up phases from the events; the local bridge has no scheduler and probes
    readiness on a fixed period, a cluster keeps the prior's probe and scheduling."""
    ps = d.prior.startup
    backend = Counter(bun.manifest.backend for bun, _ in d.group).most_common(1)[0][0]
    local = backend == "local"
    delay, period = LOCAL_PROBE if local else (ps.readiness_initial_delay_s, ps.readiness_period_s)
    sched = 0.0 if local else ps.schedule_s
    st = F.fit_startup(F.replica_phases(d.group), sched, delay, period, d.rng, d.n_boot)
    if not local:
        d.from_prior.append("startup.schedule_s")
    for fname, est in (
        ("container_start_s", st.container_start_s),
        ("model_load_s", st.model_load_s),
        ("model_load_cv", st.model_load_cv),
    ):
        if est is None:
            d.from_prior.append(f"startup.{fname}")
    d.from_prior.append("startup.termination_grace_s")
    startup = StartupCalibration(
        schedule_s=sched,
        container_start_s=st.container_start_s.value
        if st.container_start_s
        else ps.container_start_s,
        model_load_s=st.model_load_s.value if st.model_load_s else ps.model_load_s,
        model_load_cv=max(st.model_load_cv.value, 0.0) if st.model_load_cv else ps.model_load_cv,
        readiness_initial_delay_s=delay,
        readiness_period_s=period,
        termination_grace_s=ps.termination_grace_s,
    )
    return st, startup


def _fit_resources(
    d: DeviceWork, curve: F.CurveFit, k: float
) -> tuple[F.Estimate | None, F.Estimate | None]:
    """(CPU ms per request, base memory GiB); None where the bundles cannot tell."""
    cpu_req = F.fit_cpu_per_request(
        d.group, d.kind, lambda bb: curve.slope(bb) * k, d.rng, d.n_boot
    )
    if cpu_req is None or not math.isfinite(cpu_req.value):
        d.from_prior.append("cpu_per_request_ms")
    mem = F.fit_memory_base(d.group)
    if mem is None:
        d.from_prior.append("memory_base_gib")
    d.from_prior.append("memory_per_item_gib")
    return cpu_req, mem


def _service(d: DeviceWork, curve: F.CurveFit, k: float) -> ServiceCurve:
    """The curve as the twin executes it: scaled by k, a table where the affine form does
    not fit, the prior's slope when only one batch size was measured."""
    if curve.source == "isolated" and curve.form == "table":
        table = {int(s): float(m * k) for s, m in zip(curve.sizes, curve.means, strict=True)}
    else:
        table = None
    base = max(curve.base.value * k, 1e-6) if curve.form == "affine" else float(curve.means[0] * k)
    per_item = max(curve.per_item.value * k, 0.0)
    if len(curve.sizes) == 1 and curve.source == "isolated":
        per_item = d.prior.service.per_item_ms
        d.from_prior.append("service.per_item_ms")
    if curve.source == "counters":
        noise = d.prior.service.noise
    elif not math.isfinite(curve.cv.value) or np.all(curve.counts <= 1):
        noise = d.prior.service.noise  # one measurement per size: no spread to fit
        d.from_prior.append("service.noise")
        d.notes.append(
            f"service noise cv not identifiable (one measurement per batch size): the prior's "
            f"{noise.cv:g} is used (give n and a spread: the summary form of service_times.csv)"
        )
    elif curve.family == "lognormal":
        noise = Dist(kind=curve.family, cv=curve.cv.value)
    else:
        noise = Dist(kind=curve.family)  # type: ignore[arg-type]
    return ServiceCurve(base_ms=base, per_item_ms=per_item, table_ms=table, noise=noise)


def _description(group: list[tuple[Bundle, str]]) -> str:
    """The hardware, model and server the device was fitted on, for the YAML."""
    hosts = "; ".join(
        sorted(
            {
                f"{bun.manifest.hardware.description or 'unknown hardware'}"
                f" ({bun.manifest.hardware.gpu_model or bun.manifest.hardware.cpu_model or '?'})"
                for bun, _ in group
            }
        )
    )
    man = group[0][0].manifest
    return (
        f"{hosts}; {man.model.name} {man.model.format}, Triton {man.triton.version} "
        f"({man.triton.backend}); fitted by kisim calibrate"
    )


def _fit_core_scaling(
    d: DeviceWork, device: DeviceCalibration, iso: _Isolated, ref: float
) -> tuple[DeviceCalibration, F.Estimate | None, tuple[F.Estimate, F.Estimate] | None]:
    """CPU core scaling from isolated times at two core counts; per batch size when the
    exponent depends on it (a fixed serial part per execution). Returns the updated device,
    the single exponent and the (b = 1, per doubling) pair, None where not identified."""
    scaling = None
    if d.kind == "cpu" and len(iso.sizes):
        scaling = F.fit_core_scaling(iso.sizes, iso.ms, iso.cores, ref, d.rng, d.n_boot)
    if scaling is None:
        return device, None, None
    device = device.model_copy(
        update={"core_scaling": max(scaling.value, 0.0), "core_scaling_per_doubling": 0.0}
    )
    by_size = F.fit_core_scaling_by_size(iso.sizes, iso.ms, iso.cores, ref, d.rng, d.n_boot)
    if by_size is None or not (by_size[1].lo > 0 or by_size[1].hi < 0):
        return device, scaling, None
    update = {
        "core_scaling": max(by_size[0].value, 0.0),
        "core_scaling_per_doubling": by_size[1].value,
    }
    return device.model_copy(update=update), scaling, by_size

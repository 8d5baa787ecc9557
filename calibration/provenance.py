"""The provenance text of a fitted calibration: which bundles (hardware, Triton, pools), which
source each fit came from, and which parameters the bundles could not identify."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from calibration.bundle import Bundle
from calibration.device_fit import DeviceFit


def rel_path(p: str | Path) -> str:
    """A path relative to the working directory when it lies below it (stable in git)."""
    try:
        return str(Path(p).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def calibration_provenance(
    bundles: list[Bundle], devices: dict[str, DeviceFit], prior_path: str | None
) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        f"Fitted by `kisim calibrate` on {now} from {len(bundles)} trace bundle(s) "
        "(docs/calibration.md describes every fit).",
        f"fitted-on: {', '.join(b.name for b in bundles)}",
        f"fitted-experiments: {', '.join(dict.fromkeys(b.experiment_id for b in bundles))}",
        "bundles:",
    ]
    for b in bundles:
        m = b.manifest
        pools = ", ".join(
            f"{p} ({c.device}, {c.replicas} replica(s) x {c.instances} instance(s), "
            f"{c.resources.cpu:g} cores, batching "
            + (
                f"max {c.batching.max_batch_size} / {c.batching.max_queue_delay_us} us"
                if c.batching.enabled
                else "off"
            )
            + ")"
            for p, c in m.pools.items()
        )
        lines.append(
            f"  - {m.name} ({rel_path(b.path)}): recorded {m.recorded_at}, {m.duration_s:.0f} s, "
            f"backend {m.backend}; hardware: {m.hardware.description or '?'} "
            f"[cpu: {m.hardware.cpu_model or '?'}; gpu: {m.hardware.gpu_model or 'none'}]; "
            f"Triton {m.triton.version or '?'} ({m.triton.backend or '?'}); model "
            f"{m.model.name} {m.model.format}; pools: {pools}"
        )
    for key, d in devices.items():
        src = (
            "isolated service_times.csv, reconciled with Triton's compute_infer/exec_count counters"
            if d.curve.source == "isolated"
            else "Triton's compute_infer/exec_count counters"
        )
        lines.append(
            f"device {key}: service curve from {src}; overhead from requests.csv minus "
            "Triton's queue and compute durations; start-up from events.csv."
        )
        if d.service_form is not None:
            f = d.service_form
            lines.append(
                f"device {key}: service form {f.chosen} (held-out log-likelihood: "
                f"multiplicative {f.heldout_loglik['multiplicative']:.1f}, additive "
                f"{f.heldout_loglik['additive']:.1f}; {f.folds})."
            )
        if d.idle_gap is not None and d.idle_gap.applied:
            ig = d.idle_gap
            lines.append(
                f"device {key}: execution after an idle gap x (1 + idle_slowdown (1 - exp(-gap / "
                f"idle_tau_ms))): idle_slowdown {ig.slowdown.fmt()}, idle_tau_ms "
                f"{ig.tau_ms.fmt()}, back-to-back level k {ig.k_warm.fmt()} (replaces the in-load "
                f"factor; {ig.chunks} counter chunks of batches of one, gaps from requests.csv)."
            )
        if d.from_prior:
            lines.append(
                f"device {key}: not identifiable from these bundles, taken from the prior "
                f"{rel_path(prior_path) if prior_path else '(built-in defaults)'}: "
                f"{', '.join(d.from_prior)}."
            )
    return "\n".join(lines)

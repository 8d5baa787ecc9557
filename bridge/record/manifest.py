"""``manifest.yaml`` (exactly the keys docs/bundle-format.md lists) and ``recording.yaml``
(everything else the recorder knows: served Triton config, applied users, host, summary)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bridge.paths import ROOT  # a checkout: manifests name files relative to it
from bridge.record.host import triton_venv_versions
from bridge.record.schedule import SHAPE_TICK_S, RecordSchedule
from kisim.core.config import Scenario
from kisim.core.host import cpu_model, mem_gib

SPAWN_RATE = 100.0  # users/s, as bridge.locust_run sets it

# The keys docs/bundle-format.md lists for manifest.yaml (True: the whole value; "*": any key).
MANIFEST_KEYS: dict[str, Any] = {
    "apiVersion": True, "kind": True, "name": True, "recorded_at": True, "backend": True,
    "start_unix_s": True, "end_unix_s": True,
    "model": {"name": True, "format": True, "input_shape": True},
    "hardware": {"description": True, "cpu_model": True, "gpu_model": True},
    "triton": {"version": True, "backend": True},
    "pools": {"*": {"device": True, "replicas": True, "instances": True, "resources": True,
                    "batching": True}},
    "routing": {"mode": True, "placement": True},
    "traffic": {"mode": True, "wait_time_s": True, "schedule": True},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Provenance:
    """How the recording was asked for: the manifest's ``recorded_with``."""

    backend: str  # local | kubernetes
    schedule_path: Path
    out: Path
    base: Path  # the base scenario


def split_manifest(full: dict[str, Any], keys: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(manifest with exactly the format's keys, everything else in the same nesting)."""
    keys = MANIFEST_KEYS if keys is None else keys
    keep: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for k, v in full.items():
        sub = keys.get(k, keys.get("*"))
        if sub is True:
            keep[k] = v
        elif isinstance(sub, dict) and isinstance(v, dict):
            a, b = split_manifest(v, sub)
            keep[k] = a
            if b:
                rest[k] = b
        else:
            rest[k] = v
    return keep, rest


def _rel(p: Path) -> str:
    """A path relative to the repository when it lies inside it."""
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def write_manifest(
    path: Path,
    *,
    spec: RecordSchedule,
    sc: Scenario,
    prov: Provenance,
    devices: dict[str, str],
    steps: list[tuple[float, int]],
    info: dict[str, Any],
    t0: float,
    t_end: float,
    users: list[tuple[float, int]],
    summary: dict[str, Any],
) -> None:
    """``path`` (manifest.yaml) and ``recording.yaml`` beside it.

    `devices` is the device kind measured per pool, `steps` the scheduled users, `users`
    the (unix time, users) Locust applied, `info` what the service-time step read from
    Triton and where Prometheus was."""
    local = prov.backend == "local"
    versions = triton_venv_versions() if local else {}
    cores = os.cpu_count()
    cpu = cpu_model() if local else None
    mem = mem_gib()
    pools: dict[str, Any] = {}
    for name, cfg in sc.pools.items():
        threads = max(1, max(1, min(cores or 1, round(cfg.resources.cpu))) // cfg.instances)
        pools[name] = {
            "device": devices[name],
            "replicas": cfg.replicas,
            "instances": cfg.instances,
            "resources": cfg.resources.model_dump(),
            "batching": cfg.batching.model_dump(),
            # beyond the format's keys: recording.yaml (docs/bundle-format.md)
            "served": info["pools"][name]["served"],
            "calibration_device": cfg.device,
            **({"threads_per_instance": threads, "limits_enforced": False} if local else {}),
        }
    applied = [{"t_s": round(t - t0, 3), "users": u} for t, u in users if t >= t0 - 1]
    tr = spec.traffic
    m: dict[str, Any] = {
        "apiVersion": "kisim/v1",
        "kind": "TraceBundle",
        "name": prov.out.name,  # one recording; repeats of a schedule get their own names
        "description": spec.description,
        "recorded_at": datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "backend": prov.backend,
        "start_unix_s": round(t0, 6),
        "end_unix_s": round(t_end, 6),
        "model": {
            "name": "mobilenetv4_conv_small",
            "format": "onnx",
            "input_shape": [3, 224, 224],
            "weights": "random",
            "runtime": f"onnxruntime {versions['onnxruntime']}"
            if "onnxruntime" in versions
            else None,
        },  # fmt: skip
        "hardware": {
            "description": (
                f"{cores}-core {platform.machine()} host ({cpu}), {mem} GiB RAM, no GPU; "
                "replicas, Locust and Prometheus share it (and other work may: see host.csv)"
            )
            if local
            else "Kubernetes cluster (node hardware not inspected by kisim record)",
            "cpu_model": cpu,
            "gpu_model": None,
            "cpu_cores": cores if local else None,
            "memory_gib": mem if local else None,
        },
        "triton": {
            "version": info.get("triton_version"),
            "backend": info.get("triton_backend"),
            **(
                {"frontend": f"nvidia-pytriton {versions['nvidia-pytriton']}"}
                if "nvidia-pytriton" in versions
                else {}
            ),
        },  # fmt: skip
        "pools": pools,
        "routing": {"mode": sc.routing.mode, "placement": sc.routing.placement},
        "traffic": {
            "mode": "closed",
            "wait_time_s": list(tr.wait_time_s),
            "schedule": [{"t_s": t, "users": u} for t, u in steps],
            # beyond the minimum
            "pattern": tr.pattern.model_dump() if tr.pattern is not None else None,
            "applied": applied,
            "shape_tick_s": SHAPE_TICK_S,
            "spawn_rate_per_s": SPAWN_RATE,
            "client": "Locust 1 process, tritonclient.http, one 1x3x224x224 FP32 tensor "
            "(binary) per request, same host",
        },
        "seed": spec.seed,
        "metrics": {
            "scrape_interval_s": sc.metrics.scrape_interval_s,
            "prometheus_url": info.get("prometheus_url"),
        },
        "service_times": info.get("service_times"),
        "summary": summary,
        "recorded_with": {
            "command": " ".join(
                [
                    "kisim",
                    "record",
                    "--backend",
                    prov.backend,
                    "--schedule",
                    str(prov.schedule_path),
                    "--out",
                    str(prov.out),
                ]
            ),
            "schedule_file": _rel(prov.schedule_path),
            "base_scenario": _rel(prov.base),
            "python": platform.python_version(),
        },
    }
    manifest, extra = split_manifest(m)
    path.write_text(yaml.safe_dump(manifest, sort_keys=False, width=100))
    extra = {"apiVersion": "kisim/v1", "kind": "TraceRecording", "name": prov.out.name,
             "schedule": spec.name, **extra}  # fmt: skip
    (path.parent / "recording.yaml").write_text(yaml.safe_dump(extra, sort_keys=False, width=100))

"""A twin `Scenario` that re-simulates a trace bundle: same users schedule, think times,
batching, instances, replicas, routing; a static controller; the calibration under test.

The bundle's pools map to calibration devices by name (the manifest's device kind is
the key `kisim calibrate` writes), else to the calibration's only device of that kind;
`device_map` ({pool: device key}) overrides both. Each replica gets its own node with
the pool's resources, except for the `local` backend, whose replicas of a pool share one
host (one node: the calibration's `host_sharing_penalty` then applies between them).
New users start at the spawn rate the load process used (`recording.yaml`'s
`traffic.spawn_rate_per_s`, Locust's `spawn_rate`); without one, spread over the tick.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from calibration.bundle import Bundle, recorded_positive
from kisim.core.config import Calibration, Scenario
from kisim.core.errors import ConfigError


def recorded_spawn_rate(bundle: Bundle) -> float | None:
    """Users/s the load process started new users at, from the bundle's `recording.yaml`
    (`traffic.spawn_rate_per_s`); None where the bundle does not say."""
    return recorded_positive(bundle, "traffic", "spawn_rate_per_s")


def device_for(
    bundle: Bundle, pool: str, cal: Calibration, device_map: dict[str, str] | None
) -> str:
    kind = bundle.manifest.pools[pool].device
    if device_map and pool in device_map:
        key = device_map[pool]
        if key not in cal.devices:
            raise ConfigError(
                f"--device {pool}={key}: calibration {cal.name!r} has no device {key!r} "
                f"(it has {', '.join(cal.devices)})"
            )
        return key
    if kind in cal.devices and cal.devices[kind].kind == kind:
        return kind
    same = [k for k, d in cal.devices.items() if d.kind == kind]
    if len(same) == 1:
        return same[0]
    raise ConfigError(
        f"bundle {bundle.name!r}, pool {pool!r}: no single {kind} device in calibration "
        f"{cal.name!r} ({', '.join(f'{k} ({d.kind})' for k, d in cal.devices.items())});"
        f" name one with --device {pool}=KEY"
    )


def scenario_for(
    bundle: Bundle, cal: Calibration, window_s: float, device_map: dict[str, str] | None = None
) -> Scenario:
    m = bundle.manifest
    pools: dict[str, Any] = {}
    nodes: list[dict[str, Any]] = []
    for pool, cfg in m.pools.items():
        dev = device_for(bundle, pool, cal, device_map)
        gpu = max(cfg.resources.gpu, 1) if cal.devices[dev].kind == "gpu" else 0
        pools[pool] = {
            "device": dev,
            "replicas": cfg.replicas,
            "min_replicas": cfg.replicas,
            "max_replicas": cfg.replicas,
            "resources": {
                "cpu": cfg.compute_cores,  # what its instances compute with
                "memory_gib": cfg.resources.memory_gib,
                "gpu": gpu,
            },
            "batching": cfg.batching.model_dump(mode="json"),
            "instances": cfg.instances,
        }
        # the local bridge runs a pool's replicas on one host; a cluster, one per node
        per_node = cfg.replicas if m.backend == "local" else 1
        nodes.append(
            {
                "name": f"{pool}-node",
                "count": cfg.replicas // per_node,
                "cpu": cfg.resources.cpu * per_node + 1.0,
                "memory_gib": cfg.resources.memory_gib * per_node + 1.0,
                "gpus": 1 if gpu else 0,
                "gpu_sharing": per_node if gpu else 1,
            }
        )
    points = [[p.t_s, p.level] for p in m.traffic.schedule]
    data = {
        "name": f"replay-{m.name}",
        "description": f"re-simulation of trace bundle {m.name} ({bundle.path})",
        "duration_s": m.duration_s,
        "window_s": window_s,
        "slo_ms": 100.0,
        "traffic": {
            "mode": m.traffic.mode,
            "pattern": {"name": "schedule", "params": {"points": points}},
            "wait_time_s": list(m.traffic.wait_time_s),
            "spawn_rate_users_s": recorded_spawn_rate(bundle),
        },
        "routing": {"mode": m.routing.mode, "placement": m.routing.placement},
        "pools": pools,
        "cluster": {"nodes": nodes},
        "controller": {"name": "static"},
        "calibration": cal.model_dump(mode="json"),
    }
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(
            f"{bundle.path / 'manifest.yaml'}: cannot be replayed: {loc}: "
            f"{first['msg'].removeprefix('Value error, ')}"
        ) from None

"""Synthetic trace bundles written by the twin itself, with known parameters (for tests).

`write_synthetic_bundle(out, scenario, seed)` runs the twin on a one-pool scenario with a
static controller and writes a bundle in the format of docs/bundle-format.md:

- ``requests.csv``: one row per request the twin completed. The twin reports latencies
  and queue waits per request but not their times, so the data plane is cut every `dt`
  seconds and each request's completion is placed uniformly inside its cut; its start is
  that completion minus its latency plus the device's mean overhead (the overhead is
  drawn after execution and not reported apart). Start times are therefore exact to
  about ``dt + overhead noise`` (~0.05 s), far below any window the fits use.
- ``prometheus/*.json``: ``query_range`` answers built from the replicas' own Triton-named
  counters (`twin.replica.Replica`: successes, executions, items, queue / compute /
  request seconds, queue length, CPU seconds), sampled every `scrape_s`. The twin has
  no server-side time outside queue and compute: all of ``overhead_ms`` is client-side.
- ``service_times.csv``: the calibrated curve times its noise (and the core scaling at
  the pool's cores), `service_repeats` draws per batch size, as an isolated measurement.
- ``events.csv``: start-ups drawn from the device's `StartupCalibration` (the twin's run
  starts on warm replicas), `startup_samples` of them, all before the recording.
- ``manifest.yaml`` and Locust-style CSVs with the totals.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kisim.core.config import Scenario
from kisim.core.errors import ConfigError
from kisim.core.patterns import make_pattern
from kisim.core.trace_bundle import TRITON_SERIES
from twin.draws import multiplier

METRICS = (*TRITON_SERIES, "container_cpu_usage_seconds_total",
           "container_memory_working_set_bytes")  # fmt: skip


def _schedule(sc: Scenario) -> list[dict[str, float]]:
    """The pattern as the shaper applies it: the level at each tick, changes only."""
    spec = sc.traffic.pattern
    pat = make_pattern(spec.name, spec.params, sc.seed)
    tick = sc.traffic.shape_tick_s
    closed = sc.traffic.mode == "closed"
    key = "users" if closed else "rate"
    rows: list[dict[str, float]] = []
    last = None
    for k in range(int(math.ceil(sc.duration_s / tick)) + 1):
        lv = pat.level(k * tick)
        lv = int(round(lv)) if closed else float(lv)
        if lv != last:
            rows.append({"t_s": round(k * tick, 6), key: lv})
            last = lv
    return rows


def write_synthetic_bundle(
    out: Path | str,
    scenario: Scenario,
    seed: int = 0,
    *,
    name: str | None = None,
    start_unix_s: float = 1_795_000_000.0,
    scrape_s: float = 1.0,
    dt: float = 0.05,
    service_repeats: int = 40,
    startup_samples: int = 12,
) -> Path:
    """Run the twin on `scenario` (one pool, static) and write a bundle folder at `out`."""
    from twin.backend import TwinBackend

    if len(scenario.pools) != 1:
        raise ConfigError(
            "synthetic bundles need a one-pool scenario (per-request pools are "
            "not reported by the twin)"
        )
    ratio = scrape_s / dt
    if abs(ratio - round(ratio)) > 1e-9:
        raise ConfigError("scrape_s must be a multiple of dt")
    out = Path(out)
    (out / "prometheus").mkdir(parents=True, exist_ok=True)
    pool, pcfg = next(iter(scenario.pools.items()))
    dev = scenario.calibration.devices[pcfg.device]
    rng = np.random.default_rng([seed, 0xB0D1E])

    be = TwinBackend()
    be.reset(scenario, seed)
    n_steps = int(round(scenario.duration_s / dt))
    per_scrape = int(round(ratio))
    ovh_mean = dev.overhead_ms * 1e-3
    starts: list[np.ndarray] = []
    lats: list[np.ndarray] = []
    n_err = 0
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {m: {} for m in METRICS}

    def scrape(t: float) -> None:
        for rep in be.dp.replicas:
            if rep.pool != pool:
                continue
            vals = {
                "nv_inference_request_success": rep.n_success,
                "nv_inference_count": rep.n_items,
                "nv_inference_exec_count": rep.n_exec,
                "nv_inference_request_duration_us": rep.request_s_sum * 1e6,
                "nv_inference_queue_duration_us": rep.queue_s_sum * 1e6,
                "nv_inference_compute_infer_duration_us": rep.compute_s_sum * 1e6,
                "nv_inference_pending_request_count": rep.queue_len,
                "container_cpu_usage_seconds_total": rep.cpu_s,
                "container_memory_working_set_bytes": rep.memory_gib() * 2**30,
            }
            for m, v in vals.items():
                samples[m].setdefault(rep.name, []).append((start_unix_s + t, float(v)))

    be.env.run(until=1e-9)  # the warm replicas come up at t = 0
    scrape(0.0)
    for k in range(n_steps):
        t0, t1 = k * dt, (k + 1) * dt
        be.env.run(until=t1)
        w = be.dp.cut()
        n_err += w.errors
        if len(w.lats):
            done = rng.uniform(t0, t1, len(w.lats))
            starts.append(np.maximum(done - w.lats + ovh_mean, 0.0))
            lats.append(np.asarray(w.lats))
        if (k + 1) % per_scrape == 0:
            scrape(t1)
    start = start_unix_s + (np.concatenate(starts) if starts else np.empty(0))
    lat_ms = (np.concatenate(lats) if lats else np.empty(0)) * 1e3
    order = np.argsort(start, kind="stable")

    with (out / "requests.csv").open("w") as f:
        f.write("start_unix_s,latency_ms,ok,pool,replica\n")
        for s, lm in zip(start[order], lat_ms[order], strict=True):
            f.write(f"{s:.6f},{lm:.4f},1,{pool},\n")
        for _ in range(n_err):  # failures (none with a static, unbounded pool)
            f.write(f"{start_unix_s + scenario.duration_s / 2:.6f},1.0,0,,\n")

    index: dict[str, Any] = {}
    for m, by_rep in samples.items():
        result = [
            {
                "metric": {
                    "__name__": m,
                    "model": "mobilenetv4",
                    "version": "1",
                    "pool": pool,
                    "replica": r,
                },
                "values": [[round(t, 3), repr(v)] for t, v in vals],
            }
            for r, vals in by_rep.items()
        ]
        (out / "prometheus" / f"{m}.json").write_text(
            json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})
        )
        index[f"{m}.json"] = {
            "query": m,
            "step": f"{scrape_s:g}s",
            "start": start_unix_s,
            "end": start_unix_s + scenario.duration_s,
        }
    (out / "prometheus" / "index.json").write_text(json.dumps(index, indent=1))

    _service_times(out / "service_times.csv", scenario, pool, rng, service_repeats)
    _events(out / "events.csv", scenario, pool, start_unix_s, rng, startup_samples)
    _locust(out, len(start), n_err, start_unix_s, scenario.duration_s)

    b = pcfg.batching
    manifest = {
        "apiVersion": "kisim/v1",
        "kind": "TraceBundle",
        "name": name or f"synthetic-{scenario.name}-s{seed}",
        "recorded_at": "2026-11-23T12:00:00Z",
        "backend": "local",
        "start_unix_s": start_unix_s,
        "end_unix_s": start_unix_s + scenario.duration_s,
        "model": {"name": "mobilenetv4_conv_small", "format": "onnx", "input_shape": [3, 224, 224]},
        "hardware": {
            "description": f"synthetic: kisim twin, calibration "
            f"{scenario.calibration.name!r}, device {pcfg.device!r}, seed {seed}",
            "cpu_model": "twin",
            "gpu_model": "twin" if dev.kind == "gpu" else None,
        },
        "triton": {"version": "twin", "backend": "twin"},
        "pools": {
            pool: {
                "device": dev.kind,
                "replicas": pcfg.replicas,
                "instances": pcfg.instances,
                "resources": {
                    "cpu": pcfg.resources.cpu,
                    "memory_gib": pcfg.resources.memory_gib,
                    "gpu": pcfg.resources.gpu,
                },
                "batching": {
                    "enabled": b.enabled,
                    "max_batch_size": b.max_batch_size,
                    "preferred_batch_sizes": list(b.preferred_batch_sizes),
                    "max_queue_delay_us": b.max_queue_delay_us,
                },
            }
        },
        "routing": {"mode": scenario.routing.mode, "placement": scenario.routing.placement},
        "traffic": {
            "mode": scenario.traffic.mode,
            "wait_time_s": list(scenario.traffic.wait_time_s),
            "schedule": _schedule(scenario),
        },
    }
    (out / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    rate = scenario.traffic.spawn_rate_users_s
    if rate:  # as the bridge records it (a replay reads it from there)
        rec = {"apiVersion": "kisim/v1", "kind": "TraceRecording", "name": manifest["name"],
               "traffic": {"spawn_rate_per_s": float(rate)}}  # fmt: skip
        (out / "recording.yaml").write_text(yaml.safe_dump(rec, sort_keys=False))
    return out


def _service_times(
    path: Path, sc: Scenario, pool: str, rng: np.random.Generator, repeats: int
) -> None:
    pcfg = sc.pools[pool]
    dev = sc.calibration.devices[pcfg.device]
    noise = multiplier(dev.service.noise)
    ratio = dev.reference_cores / pcfg.resources.cpu
    bmax = pcfg.batching.max_batch_size if pcfg.batching.enabled else 1
    with path.open("w") as f:
        f.write("device,batch_size,repeat,ms\n")
        for b in range(1, max(bmax, 1) + 1):
            scale = 1.0 if dev.kind == "gpu" else ratio ** dev.core_exponent(b)
            ms = dev.service.time_ms(b) * scale * noise(rng, repeats)
            for i, v in enumerate(ms):
                f.write(f"{dev.kind},{b},{i},{v:.5f}\n")


def _events(
    path: Path, sc: Scenario, pool: str, t0: float, rng: np.random.Generator, n: int
) -> None:
    dev = sc.calibration.devices[sc.pools[pool].device]
    st = dev.startup
    sigma = math.sqrt(math.log1p(st.model_load_cv**2))
    rows: list[tuple[float, str, str]] = []
    t = t0 - 60.0 * (n + 1)
    for i in range(max(n, sc.pools[pool].replicas)):
        name = f"{pool}-{i}"
        created = t
        started = created + st.schedule_s + st.container_start_s
        loaded = started + st.model_load_s * rng.lognormal(-0.5 * sigma * sigma, sigma)
        first = started + st.readiness_initial_delay_s
        k = max(0, math.ceil((loaded - first) / st.readiness_period_s - 1e-12))
        ready = first + k * st.readiness_period_s
        rows += [(created, name, "created"), (started, name, "started"), (ready, name, "ready")]
        if i >= sc.pools[pool].replicas:  # pre-run replicas: also stopped before the run
            rows += [(ready + 20.0, name, "stopping"), (ready + 21.0, name, "stopped")]
        t += 60.0
    with path.open("w") as f:
        f.write("t_unix_s,pool,replica,event\n")
        for t_, name, ev in sorted(rows):
            f.write(f"{t_:.3f},{pool},{name},{ev}\n")


def _locust(out: Path, n_ok: int, n_err: int, t0: float, duration: float) -> None:
    cols = ["Type", "Name", "Request Count", "Failure Count"]
    with (out / "locust_stats.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerow(["POST", "infer", n_ok + n_err, n_err])
        w.writerow(["", "Aggregated", n_ok + n_err, n_err])
    with (out / "locust_stats_history.csv").open("w", newline="") as f:
        csv.writer(f).writerow(
            ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Total Request Count"]
        )
    with (out / "locust_failures.csv").open("w", newline="") as f:
        csv.writer(f).writerow(["Method", "Name", "Error", "Occurrences"])

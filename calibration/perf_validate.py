"""Validating the twin against a perf_analyzer run: each level replayed (N users with no
think time, or open-loop arrivals at the rate), MAPE and signed bias per utilisation band."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from calibration.perf_run import PerfRun
from kisim.core.config import Calibration

PERF_METRICS: tuple[str, ...] = ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "queue_ms")


@dataclass
class PerfLevelCheck:
    run: str
    level: float
    util: float  # real: throughput x execution time / (instances x replicas)
    real: dict[str, float]
    twin: dict[str, float]  # mean over seeds

    def sre(self, m: str) -> float:
        r = self.real[m]
        den = max(abs(r), 1.0) if m == "queue_ms" else abs(r)
        return (self.twin[m] - r) / den if den > 0 else math.nan


@dataclass
class PerfValidation:
    config: str
    seeds: int
    levels: list[PerfLevelCheck]
    held_in: list[str]

    def summary(self) -> dict[str, Any]:
        from calibration.validate import BANDS

        def agg(items: list[PerfLevelCheck]) -> dict[str, Any]:
            d: dict[str, Any] = {"levels": len(items)}
            for m in PERF_METRICS:
                e = np.array([c.sre(m) for c in items])
                e = e[np.isfinite(e)]
                d[f"{m}_mape"] = float(np.mean(np.abs(e))) if len(e) else math.nan
                d[f"{m}_bias"] = float(np.mean(e)) if len(e) else math.nan
            return d

        return {
            "config": self.config,
            "seeds": self.seeds,
            **agg(self.levels),
            "bands": {
                name: agg([c for c in self.levels if lo <= c.util < hi]) for name, lo, hi in BANDS
            },
            "held_in": self.held_in,
            "per_level": [
                {"run": c.run, "level": c.level, "util": c.util, "real": c.real, "twin": c.twin}
                for c in self.levels
            ],
        }


def perf_scenario(run: PerfRun, cal: Calibration, level: float, duration_s: float,
                  window_s: float, device: str | None = None) -> Any:  # fmt: skip
    """A twin scenario holding one perf_analyzer level for `duration_s`: N users without
    think time (concurrency: a request is sent as soon as the previous answer arrives, all
    N from the start) or open-loop arrivals at the rate (constant or Poisson)."""
    from pydantic import ValidationError

    from kisim.core.config import Scenario
    from kisim.core.errors import ConfigError

    s, p = run.spec, run.spec.pool
    if s.client_batch_size != 1:
        raise ConfigError(
            f"{run.path}: client_batch_size {s.client_batch_size}: the twin sends one item per "
            "request; only -b 1 runs can be replayed (they can still be calibrated from)"
        )
    key = device or next((k for k, d in cal.devices.items() if d.kind == p.device), None)
    if key is None or key not in cal.devices:
        raise ConfigError(f"{run.path}: calibration {cal.name!r} has no {p.device} device")
    gpu = max(p.resources.gpu, 1) if p.device == "gpu" else 0
    conc = run.mode == "concurrency"
    traffic: dict[str, Any] = {
        "mode": "closed" if conc else "open",
        "pattern": {"name": "schedule", "params": {"points": [[0, level]]}},
    }
    if conc:
        traffic.update(wait_time_s=[0.0, 0.0], spawn_rate_users_s=1e6)
    else:
        traffic["arrival"] = (
            "deterministic" if s.request_distribution == "constant" else "exponential"
        )
    data = {
        "name": f"perf-{s.name}-{level:g}",
        "duration_s": duration_s,
        "window_s": window_s,
        "slo_ms": 100.0,
        "traffic": traffic,
        "routing": {"mode": "random", "placement": "balanced"},
        "pools": {
            "p": {
                "device": key, "replicas": p.replicas, "min_replicas": p.replicas,
                "max_replicas": p.replicas, "instances": p.instances,
                "resources": {"cpu": p.compute_cores, "memory_gib": p.resources.memory_gib,
                              "gpu": gpu},
                "batching": p.batching.model_dump(mode="json"),
            }
        },
        "cluster": {"nodes": [{"name": "n", "count": p.replicas,
                               "cpu": p.resources.cpu + 1.0,
                               "memory_gib": p.resources.memory_gib + 1.0,
                               "gpus": 1 if gpu else 0, "gpu_sharing": 1}]},
        "controller": {"name": "static"},
        "calibration": cal.model_dump(mode="json"),
    }  # fmt: skip
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(
            f"{run.path}: cannot be replayed: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        ) from None


def validate_perf(
    cal: Calibration,
    runs: list[PerfRun],
    seeds: int = 5,
    measure_s: float = 60.0,
    warmup_s: float = 10.0,
    config: str = "",
    device: str | None = None,
) -> PerfValidation:
    """Each level of each run in the twin: `warmup_s` not compared, then `measure_s`
    measured (a window of its own), `seeds` seeds; throughput, p50/p95/p99 and the queue
    wait per level against the CSV's (p90 is not in the twin's windows)."""
    from calibration.validate import _provenance_list
    from kisim.env.episode import run_windows, twin_backend

    fitted_on = _provenance_list(cal, "fitted-on")
    checks: list[PerfLevelCheck] = []
    for run in runs:
        p = run.spec.pool
        for lv in run.levels:
            window = math.gcd(int(round(warmup_s)), int(round(measure_s))) or 1
            sc = perf_scenario(run, cal, lv.level, warmup_s + measure_s, float(window), device)
            acc: dict[str, list[float]] = {m: [] for m in PERF_METRICS}
            for seed in range(seeds):
                ep = run_windows(twin_backend(), sc, seed)
                ws = [w for w in ep.windows if w.t_start >= warmup_s - 1e-9]
                served = sum(w.served for w in ws)
                if not served:
                    continue
                acc["throughput_rps"].append(served / sum(w.t_end - w.t_start for w in ws))
                lats = np.array([w.latency_p50_ms for w in ws])
                wt = np.array([w.served for w in ws], float)
                # windows of one length and load: their percentiles averaged by completions
                acc["p50_ms"].append(float(np.average(lats, weights=wt)))
                acc["p95_ms"].append(float(np.average([w.latency_p95_ms for w in ws], weights=wt)))
                acc["p99_ms"].append(float(np.average([w.latency_p99_ms for w in ws], weights=wt)))
                acc["queue_ms"].append(float(np.average([w.queue_wait_ms for w in ws], weights=wt)))
            twin = {m: float(np.mean(v)) if v else math.nan for m, v in acc.items()}
            real = {"throughput_rps": lv.throughput_rps, "p50_ms": lv.p50_ms,
                    "p95_ms": lv.p95_ms, "p99_ms": lv.p99_ms, "queue_ms": lv.queue_ms}  # fmt: skip
            util = min(lv.throughput_rps * lv.exec_ms / 1e3 / (p.instances * p.replicas), 1.0)
            checks.append(PerfLevelCheck(run.name, lv.level, util, real, twin))
    held = [r.name for r in runs if r.name in fitted_on]
    return PerfValidation(config, seeds, checks, held)


def perf_validation_md(v: PerfValidation) -> str:
    s = v.summary()
    out = [f"# Twin vs perf_analyzer ({v.config}, {v.seeds} seeds)", ""]
    out += ["MAPE and signed bias ((twin - real) / real: latency > 0 = the twin is too slow, "
            "throughput < 0 = it serves too little), per utilisation band of the level:", "",
            "| levels | n | throughput | p50 | p95 | p99 | queue | bias throughput | bias p50 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip

    def row(name: str, d: dict[str, Any]) -> str:
        f = lambda x: "–" if not math.isfinite(x) else f"{100 * x:.1f} %"  # noqa: E731
        return (f"| {name} | {d['levels']} | {f(d['throughput_rps_mape'])} | {f(d['p50_ms_mape'])} "
                f"| {f(d['p95_ms_mape'])} | {f(d['p99_ms_mape'])} | {f(d['queue_ms_mape'])} | "
                f"{f(d['throughput_rps_bias'])} | {f(d['p50_ms_bias'])} |")  # fmt: skip

    out.append(row("all", s))
    for name, d in s["bands"].items():
        out.append(row(f"utilisation {name}", d))
    out += ["", "| run | level | util | req/s real / twin | p50 real / twin | p99 real / twin |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for c in v.levels:
        out.append(
            f"| {c.run} | {c.level:g} | {100 * c.util:.0f} % | {c.real['throughput_rps']:.1f} / "
            f"{c.twin['throughput_rps']:.1f} | {c.real['p50_ms']:.2f} / {c.twin['p50_ms']:.2f} | "
            f"{c.real['p99_ms']:.2f} / {c.twin['p99_ms']:.2f} |"
        )
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- commands



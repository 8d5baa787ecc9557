"""`kisim record`: drive a user schedule against a fixed serving configuration; write a bundle.

A **record schedule** (``configs/schedules/*.yaml``, ``kind: RecordSchedule``) names the
fixed configuration (pools: replicas, instances, resources, batching; routing), the closed-
loop users (wait-time bounds, and either stepwise ``{t_s, users}`` points or a kisim pattern)
and the duration. It is applied over a base scenario (``--scenario``, the schedule's
``scenario:`` key, or ``configs/scenarios/default.yaml``) that supplies device keys,
calibration and cluster; only the schedule's pools serve, at min = max = replicas, with no
controller.

The run (`record`):
  1. start the pools with one replica each and measure isolated service times on it
     (`bridge.service_times`), before any load;
  2. bring the pools to their replicas, start Prometheus (scrape ``scrape_interval_s``) and
     Locust (its CSVs with full history), the schedule as a stepwise `replay` pattern on
     Locust's 1 s shape ticks, ending with 0 users at ``duration_s``;
  3. wait the schedule out while watching the replicas and the load process; let the
     requests in flight complete (the bundle's end is the last completion);
  4. read the Triton (and CPU/memory) series from Prometheus with ``query_range``;
  5. stop every process, then write ``events.csv`` and ``manifest.yaml``.
Everything is written into a temporary sibling folder that is renamed to ``--out`` only when
complete; any failure removes it and stops every process. The format is docs/bundle-format.md.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kisim.config import (
    BatchingConfig,
    PatternSpec,
    ResourcesConfig,
    RoutingConfig,
    Scenario,
    _fmt_errors,
    load_scenario,
    read_yaml,
)
from kisim.errors import BackendError, ConfigError, KisimError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIO = ROOT / "configs" / "scenarios" / "default.yaml"
SHAPE_TICK_S = 1.0  # Locust's LoadTestShape tick (bridge.locust_run)
SPAWN_RATE = 100.0  # users/s, as bridge.locust_run sets it
# Prometheus series exported raw (name -> kind); the first block is required
TRITON_SERIES: tuple[str, ...] = (
    "nv_inference_request_success",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_pending_request_count",
)
EXTRA_TRITON_SERIES: tuple[str, ...] = (
    "nv_inference_request_failure",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_output_duration_us",
)
GAUGES = ("nv_inference_pending_request_count", "container_memory_working_set_bytes",
          "DCGM_FI_DEV_GPU_UTIL")  # fmt: skip


def index_entry(metric: str, query: str, step_s: float, start: float, end: float) -> dict[str, Any]:
    """One entry of prometheus/index.json (keyed by the file name)."""
    return {"metric": metric, "query": query, "step": f"{step_s:g}s", "step_s": step_s,
            "start": start, "end": end,
            "type": "gauge" if metric in GAUGES else "counter"}  # fmt: skip


# --------------------------------------------------------------------------- schedule file


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SchedulePoint(_M):
    t_s: float = Field(ge=0, description="From this time on (s after the start)...")
    users: int = Field(ge=0, description="...this many closed-loop users.")


class ScheduleTraffic(_M):
    mode: Literal["closed"] = Field("closed", description="Closed-loop Locust users only.")
    wait_time_s: tuple[float, float] = Field(
        (0.5, 1.5), description="Locust between(min, max) think time, s."
    )
    schedule: list[SchedulePoint] | None = Field(
        None, description="Stepwise users: each point holds until the next."
    )
    pattern: PatternSpec | None = Field(
        None, description="A kisim pattern (level = users), sampled on Locust's 1 s ticks."
    )

    @model_validator(mode="after")
    def _one(self) -> ScheduleTraffic:
        if (self.schedule is None) == (self.pattern is None):
            raise ValueError("give exactly one of schedule and pattern")
        if not 0 <= self.wait_time_s[0] <= self.wait_time_s[1]:
            raise ValueError("wait_time_s: need 0 <= min <= max")
        if self.schedule is not None:
            if not self.schedule:
                raise ValueError("schedule: at least one point")
            if self.schedule[0].t_s != 0:
                raise ValueError("schedule: the first point must be at t_s 0")
            ts = [p.t_s for p in self.schedule]
            if any(b <= a for a, b in zip(ts, ts[1:], strict=False)):
                raise ValueError("schedule: t_s must increase")
        return self


class PoolSpec(_M):
    device: str | None = Field(None, description="Calibration device key (default: the base's).")
    replicas: int = Field(1, ge=1, description="Fixed replica count.")
    instances: int = Field(1, ge=1, description="instance_group.count.")
    resources: ResourcesConfig | None = Field(None, description="Default: the base's.")
    batching: BatchingConfig = Field(description="Triton's dynamic batcher.")


class ServiceTimeSpec(_M):
    batch_sizes: list[int] = Field([1, 2, 4, 8, 16], min_length=1, description="Up to max batch.")
    repeats: int = Field(20, ge=1, description="Measured requests per batch size.")
    warmup: int = Field(3, ge=0, description="Unrecorded requests per batch size first.")


class RecordSchedule(_M):
    apiVersion: Literal["kisim/v1"] = "kisim/v1"
    kind: Literal["RecordSchedule"] = "RecordSchedule"
    name: str = Field(min_length=1, description="The bundle's name.")
    description: str = ""
    scenario: str | None = Field(None, description="Base scenario, relative to this file.")
    seed: int = Field(0, ge=0)
    duration_s: float = Field(gt=0, le=3600, description="Users drop to 0 at this time.")
    traffic: ScheduleTraffic
    pools: dict[Literal["gpu", "cpu"], PoolSpec] = Field(min_length=1)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    scrape_interval_s: float = Field(1.0, gt=0, le=60, description="Prometheus scrape interval.")
    service_times: ServiceTimeSpec = Field(default_factory=ServiceTimeSpec)

    @model_validator(mode="after")
    def _ends(self) -> RecordSchedule:
        if self.traffic.schedule and self.traffic.schedule[-1].t_s >= self.duration_s:
            raise ValueError("traffic.schedule: every t_s must be below duration_s")
        return self


def load_schedule(path: Path | str) -> RecordSchedule:
    data = read_yaml(path)
    try:
        return RecordSchedule.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_fmt_errors(path, e)) from None


def steps(spec: RecordSchedule) -> list[tuple[float, int]]:
    """The stepwise users (t_s, users) Locust applies, ending with 0 users at duration_s.

    A pattern is sampled where the shape samples it: round(level(k)) at each 1 s tick."""
    tr = spec.traffic
    if tr.schedule is not None:
        pts = [(p.t_s, p.users) for p in tr.schedule]
    else:
        from kisim.patterns import make_pattern

        assert tr.pattern is not None
        pat = make_pattern(tr.pattern.name, tr.pattern.params, spec.seed)
        pts = []
        k = 0.0
        while k < spec.duration_s:
            n = max(0, int(round(pat.level(k))))
            if not pts or pts[-1][1] != n:
                pts.append((k, n))
            k += SHAPE_TICK_S
    return [*pts, (spec.duration_s, 0)]


def build_scenario(spec: RecordSchedule, base: Path, replay_csv: Path) -> Scenario:
    """The base scenario with the schedule's fixed pools, routing, users and duration."""
    sc = load_scenario(base)
    data = sc.model_dump(mode="json")
    pools: dict[str, Any] = {}
    for name, p in spec.pools.items():
        cfg = data["pools"].get(name)
        device = p.device or (cfg or {}).get("device")
        if device is None:
            raise ConfigError(f"pools.{name}.device: the base scenario {base} has no pool "
                              f"'{name}' to take it from")  # fmt: skip
        res = p.resources.model_dump() if p.resources else (cfg or {}).get("resources", {})
        pools[name] = {
            "device": device, "replicas": p.replicas, "min_replicas": p.replicas,
            "max_replicas": p.replicas, "instances": p.instances, "resources": res,
            "batching": p.batching.model_dump(),
        }  # fmt: skip
    data["name"] = spec.name
    data["seed"] = spec.seed
    data["pools"] = pools
    data["routing"] = spec.routing.model_dump()
    data["duration_s"] = spec.duration_s
    data["window_s"] = min(data["window_s"], spec.duration_s)
    data["controller"] = {"name": "static"}
    data["metrics"]["scrape_interval_s"] = spec.scrape_interval_s
    data["metrics"]["rate_window_s"] = max(data["metrics"]["rate_window_s"],
                                           2 * spec.scrape_interval_s)  # fmt: skip
    data["traffic"] = {
        "mode": "closed",
        "pattern": {"name": "replay", "params": {"csv": str(replay_csv)}},
        "wait_time_s": list(spec.traffic.wait_time_s),
    }
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_fmt_errors(f"{spec.name} over {base}", e)) from None


# --------------------------------------------------------------------------- host sampling


class HostSampler:
    """Samples the host's busy cores, the load generator's cores and the 1-min load average
    every `period_s` (`host.csv`): the CPU the replicas compete with on a shared machine."""

    def __init__(self, period_s: float = 1.0) -> None:
        self.period_s = period_s
        self.pid: int | None = None
        self.rows: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kisim-host-sampler", daemon=True)
        self._tck = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _host() -> tuple[float, float]:
        with open("/proc/stat") as f:
            v = [float(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0.0)
        return sum(v[:8]) - idle, idle  # busy, idle jiffies (guest time is inside user)

    def _proc(self) -> float:
        if self.pid is None:
            return math.nan
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                x = f.read().rsplit(")", 1)[1].split()
            return (float(x[11]) + float(x[12])) / self._tck
        except (OSError, IndexError, ValueError):
            return math.nan

    def _run(self) -> None:
        busy0, _ = self._host()
        p0, t0 = self._proc(), time.time()
        while not self._stop.wait(self.period_s):
            busy, _ = self._host()
            p, t = self._proc(), time.time()
            dt = t - t0
            with open("/proc/loadavg") as f:
                load1 = float(f.read().split()[0])
            lg = (p - p0) / dt if math.isfinite(p) and math.isfinite(p0) else math.nan
            host = (busy - busy0) / self._tck / dt
            self.rows.append(f"{t:.3f},{host:.3f},{'' if math.isnan(lg) else f'{lg:.3f}'},{load1}")
            busy0, p0, t0 = busy, p, t

    def start(self) -> HostSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def write(self, path: Path) -> None:
        path.write_text("t_unix_s,host_busy_cores,loadgen_cores,loadavg_1m\n"
                        + "".join(r + "\n" for r in self.rows))  # fmt: skip


# --------------------------------------------------------------------------- the recording


@dataclass(frozen=True, slots=True)
class BundleSummary:
    out: Path
    name: str
    start_unix_s: float
    end_unix_s: float
    requests: int
    ok: int
    failed: int
    triton_success: float
    throughput_rps: float
    wall_s: float


def _rel(p: Path) -> str:
    """A path relative to the repository when it lies inside it."""
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def _get_json(url: str, timeout_s: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 - loopback/cluster
        return json.load(r)


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _mem_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _triton_venv_versions() -> dict[str, str]:
    from bridge import paths

    code = ("import importlib.metadata as m, json; print(json.dumps({k: m.version(k) for k in "
            "('nvidia-pytriton', 'onnxruntime', 'numpy')}))")  # fmt: skip
    try:
        out = subprocess.run([str(paths.triton_python()), "-c", code], capture_output=True,
                             text=True, timeout=60, check=True)  # fmt: skip
        return dict(json.loads(out.stdout))
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}


def _query_range(url: str, query: str, start: float, end: float, step: float) -> dict[str, Any]:
    params = urllib.parse.urlencode({"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                     "step": f"{step:g}"})  # fmt: skip
    full = f"{url}/api/v1/query_range?{params}"
    delay = 0.5
    for attempt in range(5):
        try:
            with urllib.request.urlopen(full, timeout=30) as r:  # noqa: S310
                data: dict[str, Any] = json.load(r)
            if data.get("status") == "success":
                return data
            err = data.get("error")
        except (OSError, ValueError) as e:
            err = str(e)
        if attempt < 4:
            time.sleep(delay)
            delay *= 2
    raise BackendError(f"{url}: Prometheus query_range failed for {query!r} ({err})")


class Recorder:
    """One recording; `run()` writes the bundle (see the module doc)."""

    def __init__(
        self,
        schedule: Path,
        out: Path,
        *,
        backend: str = "local",
        scenario: Path | None = None,
        kube: Any = None,  # bridge.kube_settings.KubeSettings for --backend kubernetes
        prometheus_url: str | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        if backend not in ("local", "kubernetes"):
            raise KisimError(f"--backend {backend}: expected local or kubernetes")
        self.schedule_path = Path(schedule)
        self.spec = load_schedule(schedule)
        if scenario is None and self.spec.scenario is not None:
            s = Path(self.spec.scenario)
            scenario = s if s.is_absolute() else self.schedule_path.parent / s
        self.base = Path(scenario) if scenario is not None else DEFAULT_SCENARIO
        if not self.base.is_file():
            raise ConfigError(f"{self.base}: no such file (base scenario)")
        self.out = Path(out)
        if self.out.exists():
            raise KisimError(f"{self.out}: already exists; remove it or choose another --out")
        self.backend_kind = backend
        self.kube = kube
        self.prometheus_url = prometheus_url
        if backend == "kubernetes" and not prometheus_url:
            raise KisimError(
                "--backend kubernetes needs --prometheus-url (the cluster's Prometheus)"
            )
        self.echo = echo or (lambda msg: print(msg, file=sys.stderr))
        self.steps = steps(self.spec)
        # validate the whole configuration now: a bad file fails before anything starts
        self._check_dir = Path(tempfile.mkdtemp(prefix="kisim-record-check-"))
        try:
            build_scenario(self.spec, self.base, self._write_replay(self._check_dir))
        finally:
            shutil.rmtree(self._check_dir, ignore_errors=True)

    def _write_replay(self, d: Path) -> Path:
        p = d / "schedule.csv"
        p.write_text("t_s,level\n" + "".join(f"{t:g},{u}\n" for t, u in self.steps))
        return p

    # ------------------------------------------------------------------ the run

    def run(self) -> BundleSummary:
        t_wall = time.monotonic()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent))
        work = Path(tempfile.mkdtemp(prefix="kisim-record-"))
        try:
            summary = self._record(tmp, work)
            if self.out.exists():
                raise KisimError(f"{self.out}: appeared during the recording; bundle not written")
            os.rename(tmp, self.out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            if os.environ.get("KISIM_RECORD_KEEP_WORK"):  # debugging: logs, raw event file
                self.echo(f"record: work directory kept: {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        return replace(summary, out=self.out, wall_s=time.monotonic() - t_wall)

    def _make_backend(self, work: Path) -> Any:
        from bridge.backend import ClusterBackend

        if self.backend_kind == "local":
            from bridge.backend import make_local_backend

            b = make_local_backend(work)
        else:
            from bridge.kube import KubeActuator
            from bridge.local import MODEL_NAME

            b = ClusterBackend(KubeActuator(self.kube), prometheus_url=self.prometheus_url,
                               workdir=work / "run", model_name=MODEL_NAME)  # fmt: skip
        b.load.locust_csv = True
        return b

    def _record(self, tmp: Path, work: Path) -> BundleSummary:
        from bridge.local import MODEL_NAME
        from bridge.model_export import INPUT_NAME, OUTPUT_NAME

        spec = self.spec
        sc = build_scenario(spec, self.base, self._write_replay(work))
        one = sc.model_copy(deep=True)
        for cfg in one.pools.values():  # service times: one replica per pool, no load
            cfg.__dict__.update(replicas=1, min_replicas=1, max_replicas=1)
        info: dict[str, Any] = {"pools": {}}
        self._info = info
        self.echo(f"record {spec.name}: starting {', '.join(sc.pools)} "
                  f"({self.backend_kind} backend)")  # fmt: skip
        b = self._make_backend(work)
        sampler: HostSampler | None = None
        t_close = math.nan
        try:
            # Prometheus first: it takes ~5 s to scrape a new target for the first time, and the
            # bundle's series must hold a sample of every replica from before the first request
            b._start_observer(sc)
            b.actuator.start(one)
            self._wait_ready(b, one)
            self._service_times(b, sc, tmp, info, MODEL_NAME, INPUT_NAME, OUTPUT_NAME)
            b.actuator.start(sc)  # the recording's replicas (reset() keeps them)
            self._wait_ready(b, sc)
            self._wait_scraped(b, sc, time.time())
            self.echo(f"record {spec.name}: service times done; starting the load "
                      f"({spec.duration_s:g} s)")  # fmt: skip
            sampler = HostSampler().start() if self.backend_kind == "local" else None
            loadavg0 = os.getloadavg()
            b.reset(sc, spec.seed)
            if sampler is not None and b.load.proc is not None:
                sampler.pid = b.load.proc.pid
            replica_of = self._replica_names(b, sc)
            t0 = b.t0_unix
            t_end_sched = t0 + spec.duration_s
            self._wait_out(b, sc, t_end_sched)
            log = self._drain(b, t_end_sched)
            done = [s + lat / 1000.0 for s, lat in zip(log.start, log.latency_ms, strict=True)]
            t_end = max([t_end_sched, *done])
            b.load.stop()
            if sampler is not None:
                sampler.stop()
            loadavg1 = os.getloadavg()
            n, ok = self._write_requests(tmp / "requests.csv", log, replica_of, t0, t_end)
            self._copy_locust(b, tmp)
            triton_ok = self._prometheus(b, sc, tmp, t0, t_end)
            t_close = time.time()
        finally:
            if sampler is not None:
                sampler.stop()
            if math.isnan(t_close):
                t_close = time.time()
            b.close()
        if sampler is not None:
            sampler.write(tmp / "host.csv")
        events = b.actuator.events() if hasattr(b.actuator, "events") else []
        self._write_events(tmp / "events.csv", events, t_close)
        if abs(triton_ok - ok) > 0.5:
            self.echo(f"record {spec.name}: warning: {ok} successful requests in requests.csv, "
                      f"Triton counted {triton_ok:g}")  # fmt: skip
        dur = t_end - t0
        summary = {"requests": n, "ok": ok, "failed": n - ok, "triton_success": triton_ok,
                   "duration_s": round(dur, 3), "throughput_rps": round(ok / dur, 3),
                   "loadavg_1m_start": loadavg0[0], "loadavg_1m_end": loadavg1[0]}  # fmt: skip
        self._write_manifest(tmp / "manifest.yaml", sc, info, t0, t_end, log, summary)
        return BundleSummary(self.out, spec.name, t0, t_end, n, ok, n - ok, triton_ok,
                             ok / dur, 0.0)  # fmt: skip

    # ------------------------------------------------------------------ steps

    def _service_times(self, b: Any, sc: Scenario, tmp: Path, info: dict[str, Any], model: str,
                       input_name: str, output_name: str) -> None:  # fmt: skip
        from bridge import service_times as st

        rows: list[st.ServiceTime] = []
        sts = self.spec.service_times
        method = st.METHOD_LOCAL
        for pool in sc.pools:
            device = self._device(sc, pool)
            if self.backend_kind == "local":
                name, http, met = b.actuator.replicas(pool)[0]
            else:
                http, met = b.actuator.pool_url(pool), None
                if http is None:
                    raise BackendError(f"pool {pool}: no ready endpoint for service times")
            base = http if http.startswith("http") else f"http://{http}"
            meta = _get_json(f"{base}/v2")
            mcfg = _get_json(f"{base}/v2/models/{model}/config")
            db = mcfg.get("dynamic_batching") or {}
            ig = (mcfg.get("instance_group") or [{}])[0]
            info["triton_version"] = meta.get("version")
            info["triton_backend"] = mcfg.get("backend")
            served = {
                "max_batch_size": int(mcfg.get("max_batch_size", 0)),
                "preferred_batch_size": [int(x) for x in db.get("preferred_batch_size", [])],
                "max_queue_delay_us": int(db.get("max_queue_delay_microseconds", 0)),
                "instance_count": int(ig.get("count", 1)),
            }
            info["pools"][pool] = {"served": served}
            sizes = st.batch_sizes_for(max(1, served["max_batch_size"]), sts.batch_sizes)
            infer = st.Infer(base, model, input_name, output_name, seed=self.spec.seed)
            if met is not None:
                rows += st.measure_local(infer, met, pool=pool, device=device, sizes=sizes,
                                         repeats=sts.repeats, warmup=sts.warmup)  # fmt: skip
            else:
                from bridge.observer import Observer

                method = st.METHOD_PROMETHEUS
                obs = Observer(str(self.prometheus_url), sc.metrics, b.selectors.pool(pool))
                rows += st.measure_prometheus(
                    infer, obs.scalar, b.selectors.pool(pool).triton,
                    sc.metrics.scrape_interval_s, pool=pool, device=device, sizes=sizes,
                    repeats=sts.repeats, warmup=sts.warmup,
                )  # fmt: skip
        info["service_times"] = {"method": method,
                                 "batch_sizes": sorted({r.batch_size for r in rows}),
                                 "repeats": sts.repeats, "warmup": sts.warmup}  # fmt: skip
        (tmp / "service_times.csv").write_text(st.COLUMNS + "\n"
                                               + "".join(r.csv() + "\n" for r in rows))  # fmt: skip

    def _wait_ready(self, b: Any, sc: Scenario, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(b.actuator.state(p).ready >= c.replicas for p, c in sc.pools.items()):
            if time.monotonic() > deadline:
                raise BackendError(f"replicas not ready after {timeout_s:.0f} s")
            time.sleep(0.2)

    def _wait_scraped(self, b: Any, sc: Scenario, since: float, timeout_s: float = 60.0) -> None:
        """Until Prometheus holds a sample taken after `since` from every replica."""
        url = b.prometheus.url if b.prometheus is not None else str(self.prometheus_url)
        n = sum(c.replicas for c in sc.pools.values())
        q = urllib.parse.urlencode(
            {"query": f"timestamp(nv_inference_request_success{{{b.selectors.triton}}})"}
        )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                res = _get_json(f"{url}/api/v1/query?{q}")["data"]["result"]
                ts = [float(r["value"][1]) for r in res]
            except (OSError, ValueError, KeyError):
                ts = []
            if len(ts) >= n and min(ts) > since:
                return
            if time.monotonic() > deadline:
                raise BackendError(f"{url}: Prometheus has not scraped the {n} replicas "
                                   f"in {timeout_s:.0f} s")  # fmt: skip
            time.sleep(0.25)

    def _device(self, sc: Scenario, pool: str) -> str:
        if self.backend_kind == "local":
            return "cpu"  # the local stack runs every pool on this machine's CPU
        return sc.calibration.devices[sc.pools[pool].device].kind  # type: ignore[index]

    def _replica_names(self, b: Any, sc: Scenario) -> dict[str, str]:
        if not hasattr(b.actuator, "replicas"):
            return {}
        return {http: name for p in sc.pools for name, http, _ in b.actuator.replicas(p)}

    def _wait_out(self, b: Any, sc: Scenario, until: float) -> None:
        """Sleep to the schedule's end, failing fast if a replica or the load process dies."""
        while True:
            left = until - time.time()
            if left <= 0:
                return
            time.sleep(min(0.5, left))
            if b.load.proc is None or b.load.proc.poll() is not None:
                b.load.collect(until, timeout_s=0.1)  # raises with the load process's log tail
            for pool, cfg in sc.pools.items():
                s = b.actuator.state(pool)  # raises on a failed replica
                if s.ready < cfg.replicas:
                    raise BackendError(f"pool {pool}: {s.ready}/{cfg.replicas} replicas ready "
                                       "during the recording (a replica stopped)")  # fmt: skip

    def _drain(self, b: Any, t_end_sched: float, timeout_s: float = 60.0) -> Any:
        """Wait until every request sent has completed (users were told to stop)."""
        log = b.load.collect(t_end_sched + 0.3)
        deadline = time.monotonic() + timeout_s
        while len(log.start) < len(log.sent):
            if time.monotonic() > deadline:
                raise BackendError(f"{len(log.sent) - len(log.start)} requests still in flight "
                                   f"{timeout_s:.0f} s after the schedule ended")  # fmt: skip
            time.sleep(0.2)
            log.read()
        return log

    def _write_requests(self, path: Path, log: Any, replica_of: dict[str, str], t0: float,
                        t_end: float) -> tuple[int, int]:  # fmt: skip
        n = ok = 0
        rows = sorted(zip(log.start, log.latency_ms, log.ok, log.pool, log.endpoint, strict=True))
        with path.open("w") as f:
            f.write("start_unix_s,latency_ms,ok,pool,replica\n")
            for s, lat, good, pool, ep in rows:
                if not t0 - 1e-6 <= s <= t_end:
                    raise BackendError(f"request sent at {s:.3f}, outside the recording "
                                       f"[{t0:.3f}, {t_end:.3f}]")  # fmt: skip
                f.write(f"{s:.6f},{lat:.3f},{int(good)},{pool},{replica_of.get(ep, '')}\n")
                n += 1
                ok += int(good)
        if n == 0:
            raise BackendError("no requests were sent during the recording")
        return n, ok

    def _copy_locust(self, b: Any, tmp: Path) -> None:
        d = b.load.run_dir
        for kind in ("stats", "stats_history", "failures", "exceptions"):
            src = d / f"locust_{kind}.csv" if d is not None else None
            if src is None or not src.is_file():
                if kind == "exceptions":
                    continue
                raise BackendError(f"load generator wrote no {src} (Locust CSVs)")
            shutil.copyfile(src, tmp / f"locust_{kind}.csv")

    def _prometheus(self, b: Any, sc: Scenario, tmp: Path, t0: float, t_end: float) -> float:
        """Raw query_range of each series; returns Triton's successes over the recording."""
        scrape = sc.metrics.scrape_interval_s
        q0 = math.floor((t0 - 3 * scrape) / scrape) * scrape
        q1 = math.ceil((t_end + 2 * scrape) / scrape) * scrape
        # let Prometheus scrape past the end (plus its evaluation delay)
        time.sleep(max(0.0, q1 + scrape + 0.5 - time.time()))
        url = b.prometheus.url if b.prometheus is not None else str(self.prometheus_url)
        sel = b.selectors
        want = [(m, sel.triton, True) for m in TRITON_SERIES]
        want += [(m, sel.triton, False) for m in EXTRA_TRITON_SERIES]
        want += [("container_cpu_usage_seconds_total", sel.pods, False),
                 ("container_memory_working_set_bytes", sel.pods, False),
                 ("DCGM_FI_DEV_GPU_UTIL", sel.gpu, False)]  # fmt: skip
        d = tmp / "prometheus"
        d.mkdir()
        index: dict[str, Any] = {}  # file name -> how it was queried
        self._info["prometheus_url"] = url
        success = math.nan
        for metric, s, required in want:
            query = f"{metric}{{{s}}}"
            data = _query_range(url, query, q0, q1, scrape)
            result = data["data"]["result"]
            if not result:
                if required:
                    raise BackendError(f"{url}: no samples of {query} during the recording")
                continue
            (d / f"{metric}.json").write_text(json.dumps(data, separators=(",", ":")))
            index[f"{metric}.json"] = index_entry(metric, query, scrape, q0, q1)
            if metric == "nv_inference_request_success":
                success = 0.0
                for r in result:
                    vals = [(float(t), float(v)) for t, v in r["values"]]
                    before = [v for t, v in vals if t <= t0]
                    if not before:
                        self.echo(f"warning: {r['metric'].get('pod', '?')}: first sample of "
                                  f"{metric} is after the start")  # fmt: skip
                    success += vals[-1][1] - (before[-1] if before else vals[0][1])
        (d / "index.json").write_text(json.dumps(index, indent=1))
        return success

    def _write_events(self, path: Path, events: list[Any], t_close: float) -> None:
        """created/started/ready/stopping/stopped per replica (started = created locally:
        the replica process is the container)."""
        rows: list[tuple[float, str, str, str]] = []
        stopping: set[str] = set()
        for e in events:
            if e.kind == "created":
                rows += [(e.t_unix, e.pool, e.replica, "created"),
                         (e.t_unix, e.pool, e.replica, "started")]  # fmt: skip
            elif e.kind == "ready":
                rows.append((e.t_unix, e.pool, e.replica, "ready"))
            elif e.kind == "stopping":
                stopping.add(e.replica)
                rows.append((e.t_unix, e.pool, e.replica, "stopping"))
            elif e.kind == "terminated":
                if e.replica not in stopping:  # stopped by close(): it began at t_close
                    rows.append((min(t_close, e.t_unix), e.pool, e.replica, "stopping"))
                    stopping.add(e.replica)
                rows.append((e.t_unix, e.pool, e.replica, "stopped"))
            elif e.kind == "failed":
                raise BackendError(f"replica {e.replica} failed: {e.detail}")
        rows.sort()
        path.write_text("t_unix_s,pool,replica,event\n"
                        + "".join(f"{t:.6f},{p},{r},{k}\n" for t, p, r, k in rows))  # fmt: skip

    def _write_manifest(self, path: Path, sc: Scenario, info: dict[str, Any], t0: float,
                        t_end: float, log: Any, summary: dict[str, Any]) -> None:  # fmt: skip
        spec = self.spec
        local = self.backend_kind == "local"
        versions = _triton_venv_versions() if local else {}
        cores = os.cpu_count()
        cpu_model = _cpu_model() if local else None
        mem = _mem_gib()
        pools: dict[str, Any] = {}
        for name, cfg in sc.pools.items():
            threads = max(1, max(1, min(cores or 1, round(cfg.resources.cpu))) // cfg.instances)
            pools[name] = {
                "device": self._device(sc, name),
                "replicas": cfg.replicas,
                "instances": cfg.instances,
                "resources": cfg.resources.model_dump(),
                "batching": cfg.batching.model_dump(),
                # beyond the format's keys: recording.yaml (docs/bundle-format.md)
                "served": info["pools"][name]["served"],
                "calibration_device": cfg.device,
                **({"threads_per_instance": threads, "limits_enforced": False} if local else {}),
            }
        applied = [{"t_s": round(t - t0, 3), "users": u} for t, u in log.users if t >= t0 - 1]
        tr = spec.traffic
        m: dict[str, Any] = {
            "apiVersion": "kisim/v1",
            "kind": "TraceBundle",
            "name": spec.name,
            "description": spec.description,
            "recorded_at": datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "backend": self.backend_kind,
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
                    f"{cores}-core {platform.machine()} host ({cpu_model}), {mem} GiB RAM, no GPU; "
                    "replicas, Locust and Prometheus share it (and other work may: see host.csv)"
                )
                if local
                else "Kubernetes cluster (node hardware not inspected by kisim record)",
                "cpu_model": cpu_model,
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
                "schedule": [{"t_s": t, "users": u} for t, u in self.steps],
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
                        self.backend_kind,
                        "--schedule",
                        str(self.schedule_path),
                        "--out",
                        str(self.out),
                    ]
                ),  # fmt: skip
                "schedule_file": _rel(self.schedule_path),
                "base_scenario": _rel(self.base),
                "python": platform.python_version(),
            },
        }
        manifest, extra = split_manifest(m)
        path.write_text(yaml.safe_dump(manifest, sort_keys=False, width=100))
        extra = {"apiVersion": "kisim/v1", "kind": "TraceRecording", "name": spec.name, **extra}
        (path.parent / "recording.yaml").write_text(
            yaml.safe_dump(extra, sort_keys=False, width=100)
        )


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


def record(schedule: Path, out: Path, **kw: Any) -> BundleSummary:
    """Validate, then record one bundle (see `Recorder`)."""
    return Recorder(schedule, out, **kw).run()

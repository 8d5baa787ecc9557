"""`Recorder`: one recording, from an empty machine (or cluster) to a complete bundle.

The run (`Recorder.run`):
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
complete; any failure removes it and stops every process.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bridge.record.bundle_csv import copy_locust, write_events, write_faults, write_requests
from bridge.record.host import HostSampler
from bridge.record.manifest import Provenance, write_manifest
from bridge.record.prometheus_export import export_series, get_json, wait_scraped
from bridge.record.schedule import (
    DEFAULT_SCENARIO,
    build_scenario,
    load_schedule,
    steps,
    write_replay,
)
from kisim.core.config import Scenario
from kisim.core.errors import BackendError, ConfigError, KisimError
from kisim.core.outputs import tmp_dir


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
        inject: str = "",
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
        from bridge.faults import check_faults, parse_faults

        self.faults = parse_faults(inject)  # --inject: real faults during the load (bridge.faults)
        check_faults(self.faults, backend, self.out.parent)
        self.steps = steps(self.spec)
        # validate the whole configuration now: a bad file fails before anything starts
        self._check_dir = tmp_dir("record-check")
        try:
            build_scenario(self.spec, self.base, write_replay(self._check_dir, self.steps))
        finally:
            shutil.rmtree(self._check_dir, ignore_errors=True)

    # ------------------------------------------------------------------ the run

    def run(self) -> BundleSummary:
        t_wall = time.monotonic()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent))
        work = tmp_dir("record")
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
        from bridge.factory import make_backend

        b = make_backend(self.backend_kind, work, self.kube, self.prometheus_url)
        b.load.locust_csv = True
        return b

    def _record(self, tmp: Path, work: Path) -> BundleSummary:
        from bridge.local import MODEL_NAME
        from bridge.model_export import INPUT_NAME, OUTPUT_NAME

        spec = self.spec
        sc = build_scenario(spec, self.base, write_replay(work, self.steps))
        one = sc.model_copy(deep=True)
        for cfg in one.pools.values():  # service times: one replica per pool, no load
            cfg.__dict__.update(replicas=1, min_replicas=1, max_replicas=1)
        info: dict[str, Any] = {"pools": {}}
        self.echo(f"record {spec.name}: starting {', '.join(sc.pools)} "
                  f"({self.backend_kind} backend)")  # fmt: skip
        b = self._make_backend(work)
        if self.faults:
            from bridge.faults import FaultInjector

            b.faults = FaultInjector(self.faults, tmp)
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
            n = sum(c.replicas for c in sc.pools.values())
            last = wait_scraped(self._prometheus_url(b), b.selectors, n, time.time())
            # the export's query_range evaluates on the scrape grid: a grid point must fall
            # between those samples and the start, or a series has no value before it
            scrape = sc.metrics.scrape_interval_s
            grid = scrape * math.ceil(last / scrape)
            time.sleep(max(0.0, grid - time.time() + 0.05))
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
            b.restore_faults()  # SIGCONT, Prometheus back: the drain and the export need them
            log = self._drain(b, t_end_sched)
            replica_of.update(self._replica_names(b, sc))  # replacements of crashed replicas
            done = [s + lat / 1000.0 for s, lat in zip(log.start, log.latency_ms, strict=True)]
            t_end = max([t_end_sched, *done])
            b.load.stop()
            if sampler is not None:
                sampler.stop()
            loadavg1 = os.getloadavg()
            n, ok = write_requests(tmp / "requests.csv", log, replica_of, t0, t_end)
            copy_locust(b.load.run_dir, tmp)
            url = self._prometheus_url(b)
            triton_ok = export_series(url, b.selectors, sc.metrics.scrape_interval_s,
                                      tmp / "prometheus", t0, t_end, self.echo)  # fmt: skip
            info["prometheus_url"] = url
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
        write_events(tmp / "events.csv", events, t_close)
        if b.faults is not None:
            n_faults = write_faults(tmp / "faults.csv", b.faults.events)
            self.echo(f"record {spec.name}: {n_faults} faults injected (faults.csv)")
        if abs(triton_ok - ok) > 0.5:
            self.echo(f"record {spec.name}: warning: {ok} successful requests in requests.csv, "
                      f"Triton counted {triton_ok:g}")  # fmt: skip
        dur = t_end - t0
        summary = {"requests": n, "ok": ok, "failed": n - ok, "triton_success": triton_ok,
                   "duration_s": round(dur, 3), "throughput_rps": round(ok / dur, 3),
                   "loadavg_1m_start": loadavg0[0], "loadavg_1m_end": loadavg1[0]}  # fmt: skip
        write_manifest(
            tmp / "manifest.yaml", spec=spec, sc=sc,
            prov=Provenance(self.backend_kind, self.schedule_path, self.out, self.base),
            devices={p: self._device(sc, p) for p in sc.pools}, steps=self.steps, info=info,
            t0=t0, t_end=t_end, users=log.users, summary=summary,
        )  # fmt: skip
        if spec.sweep is not None:
            write_sweep(tmp, spec, t0)
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
            meta = get_json(f"{base}/v2")
            mcfg = get_json(f"{base}/v2/models/{model}/config")
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

    def _prometheus_url(self, b: Any) -> str:
        return b.prometheus.url if b.prometheus is not None else str(self.prometheus_url)

    def _wait_ready(self, b: Any, sc: Scenario, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(b.actuator.state(p).ready >= c.replicas for p, c in sc.pools.items()):
            if time.monotonic() > deadline:
                raise BackendError(f"replicas not ready after {timeout_s:.0f} s")
            time.sleep(0.2)

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
            if self.faults:  # faults due, routing to replacements; replicas may be down now
                b._tick()
                continue
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


def write_sweep(bundle: Path, spec: Any, t0: float) -> Path:
    """``perf/`` of a sweep recording: perf_analyzer's columns per level, and the perf run's
    YAML with the bundle's pool, model, hardware and Triton (from its manifest.yaml)."""
    import yaml

    from bridge.record.perf_csv import write_perf_run

    man = yaml.safe_load((bundle / "manifest.yaml").read_text())
    (pool,) = man["pools"].values()
    rec = bundle / "recording.yaml"
    doc = yaml.safe_load(rec.read_text()) if rec.is_file() else {}
    served = next(iter((doc or {}).get("pools", {}).values()), {}) if doc else {}
    if isinstance(served, dict) and served.get("threads_per_instance"):
        pool = {**pool, "threads_per_instance": int(served["threads_per_instance"])}
    hw = {k: v for k, v in man.get("hardware", {}).items() if k in ("description", "cpu_model",
                                                                     "gpu_model")}  # fmt: skip
    sw = spec.sweep
    meta = (man["model"], hw, man.get("triton", {}), str(man["recorded_at"]))
    return write_perf_run(bundle, spec.name, sw.levels, sw.level_s, sw.warmup_s, t0, pool, *meta)


def record(schedule: Path, out: Path, **kw: Any) -> BundleSummary:
    """Validate, then record one bundle (see `Recorder`)."""
    return Recorder(schedule, out, **kw).run()

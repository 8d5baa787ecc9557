"""The `local` actuator: real Triton replicas as processes on this machine.

A small ReplicaSet controller: `set_replicas` records the desired count (and at once takes
scale-down victims out of the endpoints, as a terminating pod leaves its EndpointSlice);
a supervisor thread reconciles — spawns replicas, probes their model readiness like a
readinessProbe, and stops victims after a drain delay (a preStop sleep) with SIGTERM, so
Triton finishes in-flight requests. Every replica has its own loopback ports; Prometheus
finds their metrics ports through a file_sd targets file rewritten as replicas come and go.

Local differences from a cluster, stated rather than hidden: no scheduler (nothing is
ever Pending; a starting replica is desired but not ready), CPU and memory limits are
exported for utilisation but not enforced, and the `gpu` pool runs on the CPU unless a
GPU build of ONNX Runtime is present (none is, here).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bridge import paths, procs
from bridge.actuator import PodLifecycle, PoolState
from bridge.lifecycle import ReplicaEvent
from bridge.model_export import INPUT_NAME, OUTPUT_NAME
from bridge.ports import HOST, free_port
from bridge.proc_exporter import PodTarget, ProcExporter
from bridge.triton_metrics import scrape
from kisim.core.config import PoolConfig, Scenario
from kisim.core.errors import BackendError
from kisim.core.outputs import tmp_dir
from kisim.core.rundir import atomic_write

log = logging.getLogger(__name__)
MODEL_NAME = "mobilenetv4_conv_small"  # as in manifests/kisim/20-triton-model-config.yaml


@dataclass
class _Replica:
    name: str
    pool: str
    proc: subprocess.Popen[bytes]
    http_port: int
    metrics_port: int
    workspace: Path
    log: Path
    created: float
    ready_at: float | None = None
    stopping_at: float | None = None
    sigterm_at: float | None = None

    @property
    def http(self) -> str:
        return f"{HOST}:{self.http_port}"

    @property
    def metrics(self) -> str:
        return f"{HOST}:{self.metrics_port}"

    @property
    def serving(self) -> bool:
        return self.ready_at is not None and self.stopping_at is None


@dataclass
class _Pool:
    cfg: PoolConfig
    desired: int = 0
    replicas: list[_Replica] = field(default_factory=list)
    next_index: int = 0
    in_scenario: bool = True


class LocalActuator:
    """`bridge.actuator.Actuator` over local Triton processes (plus `endpoints`, `events`)."""

    has_hpa = False  # no HorizontalPodAutoscaler here: kisim's HPA acts from outside

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        probe_period_s: float = 0.25,
        drain_s: float = 1.0,
        start_timeout_s: float = 180.0,
        stop_grace_s: float = 20.0,
        restart_crashed: bool = True,
    ) -> None:
        paths.require_setup()
        self._own_workdir = workdir is None
        self.workdir = workdir or tmp_dir("local")  # /tmp/kisim-<pid>-*: swept once pid is gone
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.targets_file = self.workdir / "targets.json"
        self._write_targets([])
        self.exporter = ProcExporter()
        self.probe_period_s = probe_period_s
        self.drain_s = drain_s
        self.start_timeout_s = start_timeout_s
        self.stop_grace_s = stop_grace_s
        # a replica that dies after it was ready is replaced, as the kubelet restarts a
        # crashed container; one that dies before it was ever ready ends the run (its
        # configuration or the machine is broken, and a restart would fail the same way)
        self.restart_crashed = restart_crashed
        self.final_counters: dict[str, dict[str, float]] = {}
        self._pools: dict[str, _Pool] = {}
        self._events: list[ReplicaEvent] = []
        self._error: str | None = None
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closing = False  # close() began: the supervisor stops acting
        self._closed = False  # close() reaped every replica: the supervisor exits
        self._targets_key: tuple[str, ...] = ()
        self._warned_gpu = False
        self._thread = threading.Thread(
            target=self._run, name="kisim-local-supervisor", daemon=True
        )
        self._thread.start()

    # ----------------------------------------------------------------- Actuator protocol

    def start(self, scenario: Scenario) -> None:
        """Bring the scenario's pools to their initial replicas (restarting changed pools)."""
        with self._lock:
            self._check()
            for name, pool in self._pools.items():
                cfg = scenario.pools.get(name)  # type: ignore[call-overload]
                if cfg is None or _serving_config(cfg) != _serving_config(pool.cfg):
                    self._scale(name, 0)  # gone from the scenario, or a new serving config
                pool.in_scenario = cfg is not None
            for name, cfg in scenario.pools.items():
                pool = self._pools.setdefault(name, _Pool(cfg))
                pool.cfg, pool.in_scenario = cfg, True
                if name == "gpu" and not self._warned_gpu:
                    self._warned_gpu = True
                    log.warning("local actuator: pool 'gpu' runs on the CPU (no GPU runtime here)")
                self._scale(name, cfg.replicas)
        self._wake.set()

    def set_replicas(self, pool: str, n: int) -> int:
        with self._lock:
            self._check()
            p = self._pools.get(pool)
            if p is None or not p.in_scenario:
                raise BackendError(f"local actuator: no pool '{pool}' in this scenario")
            n = max(p.cfg.min_replicas, min(p.cfg.max_replicas, int(n)))
            self._scale(pool, n)
        self._wake.set()
        return n

    def state(self, pool: str) -> PoolState:
        with self._lock:
            self._check()
            p = self._pools.get(pool)
            if p is None:
                return PoolState(0, 0, 0)
            return PoolState(p.desired, sum(r.serving for r in p.replicas), 0)

    def pool_url(self, pool: str) -> str | None:
        """A ready replica's URL (for probes); the load generator uses `endpoints`."""
        eps = self.endpoints(pool)
        return f"http://{eps[0]}" if eps else None

    def set_hpa(self, pool: str, target_cpu_utilization: float | None) -> None:
        if target_cpu_utilization is not None:
            raise BackendError(
                "local actuator: there is no HorizontalPodAutoscaler locally; use controller "
                "'static' or 'external' (kisim's HPA policy acts through apply())"
            )

    def close(self) -> None:
        """Stop every replica (gracefully, then by force) and remove the work directory.

        The supervisor thread, which forked the replicas, stays alive until they are
        reaped: its exit would fire their PDEATHSIG in the middle of the drain."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            reps = [r for p in self._pools.values() for r in p.replicas]
            for r in reps:
                procs.signal_group(r.proc, signal.SIGCONT)  # a paused replica cannot drain
                procs.terminate(r.proc)
        for r in reps:
            procs.reap(r.proc, self.stop_grace_s)
            self._event(r, "terminated", "close")
            shutil.rmtree(r.workspace, ignore_errors=True)
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=10)
        self.exporter.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ----------------------------------------------------------------- extras for the bridge

    def endpoints(self, pool: str) -> list[str]:
        """host:port of each ready, non-terminating replica (the pool's EndpointSlice)."""
        with self._lock:
            p = self._pools.get(pool)
            return [r.http for r in p.replicas if r.serving] if p else []

    def events(self) -> list[ReplicaEvent]:
        with self._lock:
            return list(self._events)

    def pods(self, pool: str) -> list[PodLifecycle]:
        """The pool's live replicas with their lifecycle (what an HPA's pod lister sees)."""
        with self._lock:
            p = self._pools.get(pool)
            reps = p.replicas if p else []
            return [PodLifecycle(r.name, r.created, r.ready_at, r.stopping_at is not None)
                    for r in reps]  # fmt: skip

    def replicas(self, pool: str) -> list[tuple[str, str, str]]:
        """(name, http address, metrics address) of the pool's live replica processes."""
        with self._lock:
            p = self._pools.get(pool)
            return [(r.name, r.http, r.metrics) for r in p.replicas] if p else []

    def signal_replica(self, target: str, sig: int) -> tuple[str, str, int]:
        """Send `sig` to every process of a replica (fault injection, `bridge.faults`).

        `target` is a replica name (``cpu-0``) or a pool name (its oldest serving
        replica); SIGCONT also reaches a replica that is being stopped meanwhile. Returns
        (pool, replica, pid); BackendError when there is no such replica."""
        with self._lock:
            reps = [r for p in self._pools.values() for r in p.replicas
                    if r.stopping_at is None or sig == signal.SIGCONT]  # fmt: skip
            named = [r for r in reps if r.name == target]
            if not named:
                named = sorted((r for r in reps if r.pool == target and r.serving),
                               key=lambda r: r.created)  # fmt: skip
            if not named:
                live = ", ".join(r.name for r in reps) or "none"
                raise BackendError(f"local actuator: no live replica '{target}' (live: {live})")
            r = named[0]
            procs.signal_group(r.proc, sig)
            return r.pool, r.name, r.proc.pid

    # ----------------------------------------------------------------- internals

    def _check(self) -> None:
        if self._closing:
            raise BackendError("local actuator: already closed")
        if self._error:
            raise BackendError(self._error)

    def _event(self, r: _Replica, kind: str, detail: str = "") -> None:
        with self._lock:
            self._events.append(ReplicaEvent(time.time(), r.pool, r.name, kind, detail))  # type: ignore[arg-type]

    def _scale(self, pool: str, n: int) -> None:
        """Record the desired count; victims leave the endpoints now (caller holds the lock)."""
        p = self._pools[pool]
        p.desired = n
        live = [r for r in p.replicas if r.stopping_at is None]
        extra = len(live) - n
        if extra > 0:  # ReplicaSet order: not-ready before ready, newest first
            victims = sorted(live, key=lambda r: (r.ready_at is not None, -r.created))[:extra]
            now = time.time()
            for r in victims:
                r.stopping_at = now
                self._event(r, "stopping")
                self.exporter.set_ready(r.name, False)

    def _spawn(self, pool: str) -> None:
        p = self._pools[pool]
        name = f"{pool}-{p.next_index}"
        p.next_index += 1
        cfg = p.cfg
        cores = max(1, min(os.cpu_count() or 1, round(cfg.resources.cpu)))
        b = cfg.batching
        http, metrics = free_port(), free_port()
        # pytriton keeps unix sockets in its workspace: keep the path short (108-byte limit),
        # so not under a deep work directory; the replica removes it when it exits
        ws = tmp_dir(name)
        logf = self.workdir / f"{name}.log"
        cmd = [
            str(paths.triton_python()), str(Path(__file__).with_name("triton_server.py")),
            "--model", str(paths.model_path()), "--model-name", MODEL_NAME,
            "--input-name", INPUT_NAME, "--output-name", OUTPUT_NAME,
            "--http-port", str(http), "--metrics-port", str(metrics), "--workspace", str(ws),
            "--batching", str(int(b.enabled)), "--max-batch-size", str(b.max_batch_size),
            "--preferred", ",".join(map(str, b.preferred_batch_sizes)),
            "--max-queue-delay-us", str(b.max_queue_delay_us),
            "--max-queue-size", str(b.max_queue_size),
            "--instances", str(cfg.instances),
            "--threads", str(max(1, cores // cfg.instances)),
            "--exit-timeout-s", str(int(self.stop_grace_s // 2)),
        ]  # fmt: skip
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = ":".join(
            x for x in (paths.triton_libdir(), env.get("LD_LIBRARY_PATH", "")) if x
        )
        env.pop("PYTHONPATH", None)  # the main venv's packages must not leak into numpy<2 land
        env["PYTHONUNBUFFERED"] = "1"
        proc = procs.spawn(cmd, logf, env)
        r = _Replica(name, pool, proc, http, metrics, ws, logf, time.time())
        p.replicas.append(r)
        self._event(r, "created", f"pid={proc.pid} http={r.http} metrics={r.metrics}")
        mem = cfg.resources.memory_gib * 2**30
        self.exporter.set(PodTarget(name, pool, proc.pid, cfg.resources.cpu, mem))

    def _probe(self, r: _Replica) -> bool:
        url = f"http://{r.http}/v2/models/{MODEL_NAME}/ready"
        try:
            with urllib.request.urlopen(url, timeout=0.5) as resp:  # noqa: S310 - loopback
                return bool(resp.status == 200)
        except OSError:
            return False

    def _run(self) -> None:
        """Supervisor loop: reconcile, probe, drain and stop, publish scrape targets."""
        while not self._closed:
            try:
                self._tick()
            except Exception as e:  # noqa: BLE001 - surfaced to the caller via _check()
                log.exception("local supervisor failed")
                with self._lock:
                    self._error = f"local actuator: supervisor failed: {e}"
            self._wake.wait(self.probe_period_s)
            self._wake.clear()

    def _tick(self) -> None:
        now = time.time()
        with self._lock:
            if self._closing:
                return
            for name, p in self._pools.items():
                live = [r for r in p.replicas if r.stopping_at is None]
                for _ in range(p.desired - len(live)):
                    self._spawn(name)
            reps = [r for p in self._pools.values() for r in p.replicas]
        for r in reps:
            rc = r.proc.poll()
            if r.stopping_at is None and rc is not None:
                if r.ready_at is not None and self.restart_crashed:
                    self._crash(r, rc)
                else:
                    self._fail(r, f"exited with code {rc} ({procs.log_tail(r.log)})")
            elif r.ready_at is None and r.stopping_at is None:
                if self._probe(r):
                    r.ready_at = time.time()
                    self._event(r, "ready", f"startup={r.ready_at - r.created:.2f}s")
                    self.exporter.set_ready(r.name, r.serving)
                elif now - r.created > self.start_timeout_s:
                    self._fail(r, f"not ready after {self.start_timeout_s:.0f} s (log {r.log})")
            elif r.stopping_at is not None and r.sigterm_at is None:
                if now - r.stopping_at >= self.drain_s:
                    if rc is None and r.ready_at is not None:
                        try:
                            self.final_counters[r.name] = scrape(r.metrics)
                        except BackendError:
                            pass
                    r.sigterm_at = time.time()
                    procs.terminate(r.proc)
            elif r.sigterm_at is not None and rc is not None:
                procs.reap(r.proc, 0)
                self._retire(r)
            elif r.sigterm_at is not None and now - r.sigterm_at > self.stop_grace_s:
                procs.reap(r.proc, 0)  # SIGKILL the group
                self._retire(r)
        self._publish()

    def _fail(self, r: _Replica, why: str) -> None:
        self._event(r, "failed", why)
        with self._lock:
            self._error = f"local actuator: replica {r.name} (127.0.0.1:{r.http_port}) {why}"
        r.stopping_at = r.stopping_at or time.time()
        r.sigterm_at = time.time()
        procs.terminate(r.proc)

    def _crash(self, r: _Replica, rc: int) -> None:
        """A ready replica died: out of the endpoints now, reaped; `_tick` starts another."""
        self._event(r, "failed", f"crashed: exited with code {rc}; replaced")
        r.stopping_at = r.sigterm_at = time.time()
        self.exporter.set_ready(r.name, False)
        procs.reap(r.proc, 0)  # SIGKILL what is left of its group: no port stays open
        self._retire(r)
        self._wake.set()

    def _retire(self, r: _Replica) -> None:
        with self._lock:
            p = self._pools[r.pool]
            if r in p.replicas:
                p.replicas.remove(r)
        self.exporter.remove(r.name)
        self._event(r, "terminated", f"rc={r.proc.returncode}")
        shutil.rmtree(r.workspace, ignore_errors=True)

    def _publish(self) -> None:
        """Rewrite the file_sd targets when the set of live replicas changed."""
        with self._lock:
            reps = [r for p in self._pools.values() for r in p.replicas]
        key = tuple(sorted(r.name for r in reps))
        if key == self._targets_key:
            return
        self._targets_key = key
        self._write_targets(reps)

    def _write_targets(self, reps: list[_Replica]) -> None:
        groups = [{"targets": [r.metrics], "labels": {"pool": r.pool, "pod": r.name}} for r in reps]
        atomic_write(self.targets_file, json.dumps(groups))


def _serving_config(cfg: PoolConfig) -> tuple[object, ...]:
    """What a running replica was started with; a change needs new processes."""
    return (cfg.batching.model_dump_json(), cfg.instances, cfg.resources.cpu)

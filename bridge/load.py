"""The parent side of the load generator: start the Locust process, steer it, read its records.

`LoadGenerator` lives in the process that runs the env (no gevent there); it starts
`bridge.locust_run` with a JSON spec built from the scenario (pattern, users' wait times,
seed, episode clock), keeps its routing file current (ready endpoints per pool and the
placement's GPU share) and reads its per-request records through `bridge.records.RequestLog`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bridge import procs
from bridge.paths import ROOT
from bridge.records import RequestLog
from kisim.core.config import Scenario
from kisim.core.errors import BackendError
from kisim.core.rundir import atomic_write


class LoadGenerator:
    """One Locust process per episode; `route` and `collect` while it runs."""

    def __init__(
        self,
        workdir: Path,
        *,
        model_name: str,
        input_name: str,
        output_name: str,
        timeout_s: float = 30.0,
        flush_s: float = 0.2,
        routing_poll_s: float = 0.1,
        max_in_flight: int = 2000,
        python: str = sys.executable,
        locust_csv: bool = False,
    ) -> None:
        self.workdir = workdir
        self.model = (model_name, input_name, output_name)
        self.timeout_s = timeout_s
        self.flush_s = flush_s
        self.routing_poll_s = routing_poll_s
        self.max_in_flight = max_in_flight
        self.python = python
        self.locust_csv = locust_csv  # write Locust's CSVs (full history) as run_dir/locust_*.csv
        self.run_dir: Path | None = None  # the current load process's directory
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: RequestLog | None = None
        self._routing: tuple[object, ...] | None = None
        self._t0: float | None = None
        self._n = 0

    def start(
        self,
        scenario: Scenario,
        seed: int,
        endpoints: dict[str, list[str]],
        gpu_share: float | None,
        *,
        ready_timeout_s: float = 60.0,
        lead_s: float = 0.2,
        max_runtime_s: float | None = None,
    ) -> float:
        """Start the process, wait until it has imported Locust and is ready, then start
        the episode clock `lead_s` later; returns that t0 (unix s). The process stops by
        itself `max_runtime_s` after t0 (default: the scenario's duration + 5 min)."""
        self.stop()
        self._n += 1
        d = self.workdir / f"load-{self._n}"
        d.mkdir(parents=True, exist_ok=True)
        self.run_dir = d
        events, routing = d / "events.csv", d / "routing.json"
        self._routing = None
        self._t0 = None
        self.routing_file = routing
        self.route(endpoints, gpu_share)
        tr = scenario.traffic
        runtime = max_runtime_s if max_runtime_s is not None else scenario.duration_s + 300.0
        spec = {
            "max_runtime_s": runtime,
            "mode": tr.mode,
            "pattern": tr.pattern.name,
            "pattern_params": tr.pattern.params,
            "seed": seed,
            "wait_time_s": list(tr.wait_time_s),
            "arrival": tr.arrival,
            "routing_mode": scenario.routing.mode,
            "routing_file": str(routing),
            "events_file": str(events),
            "model_name": self.model[0],
            "input_name": self.model[1],
            "output_name": self.model[2],
            "timeout_s": self.timeout_s,
            "flush_s": self.flush_s,
            "routing_poll_s": self.routing_poll_s,
            "max_in_flight": self.max_in_flight,
            "csv_base": str(d / "locust") if self.locust_csv else None,
        }
        spec_file = d / "spec.json"
        spec_file.write_text(json.dumps(spec, indent=1))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(x for x in (str(ROOT), env.get("PYTHONPATH")) if x)
        self.proc = proc = procs.spawn(
            [self.python, "-m", "bridge.locust_run", str(spec_file)], d / "locust.log", env
        )
        self.log = log = RequestLog(events)

        def ready() -> bool:
            log.read()
            return log.ready_at is not None or proc.poll() is not None

        procs.wait_until(ready, ready_timeout_s, 0.05)
        if log.ready_at is None:
            tail = procs.log_tail(d / "locust.log")
            self.stop()
            raise BackendError(f"load generator not ready in {ready_timeout_s:.0f} s: {tail}")
        self._t0 = time.time() + lead_s
        self._routing = None
        self.route(endpoints, gpu_share)
        return self._t0

    def route(self, endpoints: dict[str, list[str]], gpu_share: float | None) -> None:
        """Publish ready endpoints and the GPU share (atomically, only when changed)."""
        key = (json.dumps(endpoints, sort_keys=True), gpu_share)
        if key == self._routing:
            return
        msg = {"endpoints": endpoints, "gpu_share": gpu_share, "t0_unix": self._t0}
        try:
            atomic_write(self.routing_file, json.dumps(msg))
        except OSError as e:  # a full disk: the load keeps the old lists; retried next tick
            if self._t0 is None:
                raise BackendError(f"{self.routing_file}: cannot write ({e})") from None
            return
        self._routing = key

    def collect(
        self, until_unix: float, timeout_s: float = 10.0, on_wait: Callable[[], None] | None = None
    ) -> RequestLog:
        """Read records until every event before `until_unix` is in (the watermark);
        `on_wait()` runs between reads (the backend keeps injecting and undoing faults)."""
        if self.log is None or self.proc is None:
            raise BackendError("load generator: not started")
        deadline = time.monotonic() + timeout_s
        while True:
            self.log.read()
            if self.log.watermark >= until_unix:
                return self.log
            if self.proc.poll() is not None:
                tail = procs.log_tail(self.workdir / f"load-{self._n}" / "locust.log")
                raise BackendError(
                    f"load generator exited with code {self.proc.returncode}: {tail}"
                )
            if time.monotonic() > deadline:
                raise BackendError(
                    f"load generator: no records up to {until_unix:.1f} after {timeout_s:.0f} s"
                    + self._disk_note()
                )
            if on_wait is not None:
                on_wait()
            time.sleep(self.flush_s / 2)

    def _disk_note(self) -> str:
        """Why records may be stuck: the disk of the event file is full."""
        try:
            free = shutil.disk_usage(self.workdir).free
        except OSError:
            return ""
        return f" (the disk of {self.workdir} is full)" if free < 1 << 20 else ""

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc, grace_s=self.timeout_s + 5.0)
            self.proc = None
        if self.log is not None:
            self.log.read()

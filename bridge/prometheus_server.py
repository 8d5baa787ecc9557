"""A real Prometheus server on 127.0.0.1 for the local stack, with a generated config.

Two jobs, named like their cluster counterparts so `bridge.promql` serves both backends:
``triton`` (the replicas' metrics ports, from a file_sd JSON file that the local actuator
rewrites as replicas come and go; Prometheus watches it with inotify) and ``cadvisor``
(the node exporter of `bridge.proc_exporter`). The scrape interval is the scenario's, so
the agent sees the same lag as on a cluster. The TSDB lives in a temporary directory that
`stop()` deletes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import yaml

from bridge import paths, procs
from bridge.ports import HOST, free_port
from kisim.core.errors import BackendError


def render_config(scrape_interval_s: float, targets_file: Path, node_exporter: str | None) -> str:
    """prometheus.yml for the local stack."""
    interval = f"{max(int(round(scrape_interval_s * 1000)), 100)}ms"
    timeout = f"{max(int(round(min(scrape_interval_s, 10.0) * 1000)), 100)}ms"
    jobs: list[dict[str, object]] = [
        {
            "job_name": "triton",
            "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "5s"}],
        }
    ]
    if node_exporter:
        jobs.append({"job_name": "cadvisor", "static_configs": [{"targets": [node_exporter]}]})
    cfg = {
        "global": {"scrape_interval": interval, "scrape_timeout": timeout},
        "scrape_configs": jobs,
    }
    return yaml.safe_dump(cfg, sort_keys=False)


class PrometheusServer:
    """Start/stop `prometheus` bound to 127.0.0.1 on a free port."""

    def __init__(
        self,
        scrape_interval_s: float,
        targets_file: Path,
        node_exporter: str | None = None,
        *,
        port: int | None = None,
        workdir: Path | None = None,
        ready_timeout_s: float = 30.0,
    ) -> None:
        self.scrape_interval_s = scrape_interval_s
        self.targets_file = targets_file
        self.node_exporter = node_exporter
        self.port = port or free_port()
        self.ready_timeout_s = ready_timeout_s
        self.workdir = workdir  # parent of the TSDB directory (default: the system temp dir)
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> PrometheusServer:
        if paths.prometheus_binary() is None:
            raise BackendError(f"no `prometheus` binary on PATH: run {paths.SETUP}")
        if self.workdir is not None:
            self.workdir.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="kisim-prometheus-", dir=self.workdir))
        cfg = self.dir / "prometheus.yml"
        cfg.write_text(render_config(self.scrape_interval_s, self.targets_file, self.node_exporter))
        self._log = self.dir / "prometheus.log"
        self._spawn()
        return self

    def _spawn(self) -> None:
        """Start the process on `port` over the TSDB in `dir`; wait until it is ready."""
        binary = paths.prometheus_binary()
        assert self.dir is not None and binary is not None
        self._proc = proc = procs.spawn(
            [
                binary,
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address={HOST}:{self.port}",
                "--storage.tsdb.retention.time=6h",
                "--log.level=warn",
            ],
            self._log,
        )
        if not procs.wait_until(
            lambda: proc.poll() is not None or self._ready(), self.ready_timeout_s
        ):
            self.stop()
            raise BackendError(f"{self.url}: Prometheus not ready in {self.ready_timeout_s:.0f} s")
        if proc.poll() is not None:
            tail = procs.log_tail(self._log)
            self.stop()
            raise BackendError(f"{self.url}: Prometheus exited ({tail})")

    @property
    def running(self) -> bool:
        return self._proc is not None

    def pause(self) -> None:
        """Stop the process (SIGTERM, as a pod deletion does) but keep its TSDB and port,
        so `resume` brings back the same server with the samples it had (fault injection)."""
        if self._proc is not None:
            procs.stop(self._proc, grace_s=10)
            self._proc = None

    def resume(self) -> None:
        """Start a paused server again on the same port and TSDB (no-op when running)."""
        if self._proc is None and self.dir is not None:
            self._spawn()

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:  # noqa: S310
                return bool(r.status == 200)
        except OSError:
            return False

    def wait_for_targets(self, job: str, n: int, timeout_s: float = 30.0) -> bool:
        """True once `n` targets of `job` are up (scraped at least once)."""

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=2) as r:  # noqa: S310
                    data = json.load(r)["data"]["activeTargets"]
            except OSError:
                return False
            return sum(t["labels"].get("job") == job and t["health"] == "up" for t in data) >= n

        return procs.wait_until(up, timeout_s, 0.2)

    def stop(self) -> None:
        proc = self._proc
        if proc is not None:
            procs.stop(proc, grace_s=10)
            self._proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def local_prometheus(current: PrometheusServer | None, scrape_interval_s: float,
                     actuator: object) -> PrometheusServer:  # fmt: skip
    """The local Prometheus for an actuator that publishes its replicas in a file_sd
    ``targets_file`` (and, optionally, a node ``exporter``): `current` while it scrapes at
    the wanted interval, else a new one (the old one stopped). The TSDB lives in the system
    temp dir: a full run-dir disk must not stop it."""
    if current is not None and current.scrape_interval_s == scrape_interval_s:
        return current
    targets = getattr(actuator, "targets_file", None)
    if targets is None:
        raise BackendError("cluster backend: give prometheus_url for this actuator")
    if current is not None:
        current.stop()
    exporter = getattr(actuator, "exporter", None)
    return PrometheusServer(scrape_interval_s, targets,
                            exporter.address if exporter is not None else None).start()  # fmt: skip

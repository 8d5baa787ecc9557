"""A node-level exporter for the local replicas: the cAdvisor + kube-state-metrics stand-in.

On a cluster, CPU and memory per pod come from cAdvisor and requests/limits from
kube-state-metrics. Locally each replica is a process tree (wrapper -> tritonserver ->
backend stubs), so this exporter reads /proc for each tree and serves the *same metric
names and labels* (`container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`,
`kube_pod_container_resource_requests` / `_limits`, `kube_pod_status_ready`), so
`bridge.promql` has one set of queries for both backends. Like cAdvisor, it is one target
per node, scraped by Prometheus.

Working set = sum of PSS over the tree (shared pages counted once, as a cgroup would).
CPU = sum of utime+stime of the tree's live processes; a counter that drops when a
child exits is a reset that ``rate()`` already handles.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bridge.ports import HOST, free_port

NAMESPACE = "kisim-local"
CONTAINER = "triton"
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class PodTarget:
    """One replica as the exporter sees it."""

    pod: str
    pool: str
    pid: int  # root of the process tree
    cpu_request: float  # cores
    memory_limit_bytes: float
    ready: bool = False  # passed its readiness probe and is not terminating


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def _tree(pid: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def _cpu_seconds(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / _TICK  # utime, stime (fields 14, 15)


def _pss_bytes(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    try:  # fall back to RSS
        return float(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0.0


def render(targets: list[PodTarget]) -> str:
    """Prometheus text exposition of the current targets."""
    kids = _children_map()
    lines = [
        "# TYPE container_cpu_usage_seconds_total counter",
        "# TYPE container_memory_working_set_bytes gauge",
        "# TYPE kube_pod_container_resource_requests gauge",
        "# TYPE kube_pod_container_resource_limits gauge",
        "# TYPE kube_pod_status_ready gauge",
    ]
    for t in targets:
        tree = _tree(t.pid, kids)
        lab = f'namespace="{NAMESPACE}",pod="{t.pod}",container="{CONTAINER}",pool="{t.pool}"'
        lines += [
            f"container_cpu_usage_seconds_total{{{lab}}} {sum(map(_cpu_seconds, tree)):.3f}",
            f"container_memory_working_set_bytes{{{lab}}} {sum(map(_pss_bytes, tree)):.0f}",
            f'kube_pod_container_resource_requests{{{lab},resource="cpu",unit="core"}} '
            f"{t.cpu_request}",
            f'kube_pod_container_resource_limits{{{lab},resource="memory",unit="byte"}} '
            f"{t.memory_limit_bytes:.0f}",
            f'kube_pod_status_ready{{{lab},condition="true"}} {int(t.ready)}',
        ]
    return "\n".join(lines) + "\n"


class ProcExporter:
    """Serves `render(targets)` on 127.0.0.1:<port>/metrics from a daemon thread."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._targets: dict[str, PodTarget] = {}
        self._lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                with exporter._lock:
                    targets = list(exporter._targets.values())
                body = render(targets).encode()
                self.send_response(200 if self.path.startswith("/metrics") else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kisim-proc-exporter", daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def set(self, target: PodTarget) -> None:
        with self._lock:
            self._targets[target.pod] = target

    def set_ready(self, pod: str, ready: bool) -> None:
        with self._lock:
            t = self._targets.get(pod)
            if t is not None:
                self._targets[pod] = replace(t, ready=ready)

    def remove(self, pod: str) -> None:
        with self._lock:
            self._targets.pop(pod, None)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

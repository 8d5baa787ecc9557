"""Runs on a Ray cluster (``--ray [ADDRESS]``): the same `run_one` as the local executors, one Ray
task per run, with the run directory shipped back to this machine.

Each task runs the episode into a temporary directory on whichever node Ray picked and returns
the directory's files as bytes; this process writes them under OUT - every file atomically,
``summary.json`` last - so a run is complete on the driver's disk exactly as after a local run,
and a multi-node cluster needs no shared file system. Runs are independent and seeded, so
where a run went does not change a byte of it (tests/agents/evaluation/test_ray_cluster.py
checks ``summary.csv`` against a local run on a real head + worker cluster).

``--ray`` alone (`LOCAL_RAY`) starts a Ray instance on this machine for the command's
duration, on 127.0.0.1 only, with ``--jobs`` CPUs (0: all); ``--ray HOST:PORT`` connects to a
running cluster (``ray start --head`` / KubeRay; docs/ray.md) and leaves it running. Ray is
imported only here and only when asked for: without the ``ray`` extra, one line says how to
install it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from agents.evaluation.executor import Done, EpisodeFn, Task, run_one
from kisim.core.errors import KisimError
from kisim.core.rundir import ERROR, SUMMARY, atomic_write

LOCAL_RAY = "local"
"""The value of a bare ``--ray``: start a local Ray instance rather than connect."""

INSTALL = "pip install 'kisim[ray]' (or scripts/setup.sh, whose default extras include it)"

MAX_RETRIES = 1
"""Ray re-runs a task whose worker died this many times (Ray's default is 3): a run that
kills its worker twice (out of memory) is reported as failed, as a local pool does."""


def import_ray() -> Any:
    """The ray module, or one clear line if the optional extra is missing."""
    try:
        import ray
    except ImportError as e:
        raise KisimError(f"--ray needs Ray: {INSTALL} ({e})") from None
    return ray


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast, in one line, on an address nobody listens at (Ray itself retries for
    minutes); ``auto`` and ``ray://`` addresses are left to Ray."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise KisimError(f"--ray {address}: expected HOST:PORT (the head's GCS port, e.g. "
                         "127.0.0.1:6379), or no value to start Ray here")  # fmt: skip
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        raise KisimError(f"--ray {address}: cannot reach a Ray head there ({e})") from None


def _run_remote(episode: EpisodeFn, task: Task) -> tuple[dict[str, bytes], str | None, str]:
    """On a Ray worker: `run_one` into a private directory, then its files as bytes, the
    error if any, and the node it ran on."""
    import ray

    policy, pattern, seed, _ = task
    tmp = Path(tempfile.mkdtemp(prefix="kisim-ray-"))
    try:
        d = tmp / "run"
        err = run_one(episode, (policy, pattern, seed, d))
        files = {p.relative_to(d).as_posix(): p.read_bytes()
                 for p in sorted(d.rglob("*")) if p.is_file()}  # fmt: skip
        return files, err, ray.get_runtime_context().get_node_id()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_back(run_dir: Path, files: dict[str, bytes]) -> None:
    """A run's files under `run_dir`, each atomically, ``summary.json`` last (it marks the
    run complete, as `kisim.core.rundir.write_run` does)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / SUMMARY).unlink(missing_ok=True)
    if ERROR not in files:
        (run_dir / ERROR).unlink(missing_ok=True)
    for name in sorted(files, key=lambda n: (n == SUMMARY, n)):
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise KisimError(f"{run_dir}: refusing a file name from a worker: {name!r}")
        path = run_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = files[name]
        try:
            atomic_write(path, data.decode("utf-8"))
        except UnicodeDecodeError:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)


class RayExecutor:
    """One Ray task per run (see the module doc); at most `window` runs in flight."""

    def __init__(self, address: str = LOCAL_RAY, jobs: int = 0) -> None:
        """Checks, before any work starts, that Ray is installed and the address answers;
        starts or joins Ray only when the first runs are submitted."""
        self.address = address
        self.jobs = jobs
        self.name = "ray (local)" if address == LOCAL_RAY else f"ray {address}"
        self._ray: Any = None
        self._started = False
        self.nodes: dict[str, int] = {}  # runs per Ray node id (stderr says it at close)
        if address != LOCAL_RAY:
            check_reachable(address)
        else:
            if "ray" not in sys.modules:
                # One machine: keep every Ray component on loopback (Ray's own switch for
                # single-node Ray, read when ray is imported; docs/ray.md)
                os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            if "RAY_AUTH_TOKEN" not in os.environ and "RAY_AUTH_MODE" not in os.environ:
                # Ray authenticates a local instance with a token it would otherwise save in
                # ~/.ray/auth_token, where later `ray start` clusters pick it up: a token of
                # this command's own keeps the authentication and leaves no file behind
                os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import_ray()

    def connect(self) -> Any:
        """Start or join Ray once per executor; the module, ready for tasks."""
        if self._ray is not None:
            return self._ray
        ray = import_ray()
        kw: dict[str, Any] = {"log_to_driver": False, "logging_level": "WARNING",
                              "configure_logging": True}  # fmt: skip
        try:
            if ray.is_initialized():
                pass
            elif self.address == LOCAL_RAY:
                ray.init(num_cpus=self.jobs or os.cpu_count() or 1, include_dashboard=False,
                         _node_ip_address="127.0.0.1", **kw)  # fmt: skip
                self._started = True
            else:
                ray.init(address=self.address, **kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise KisimError(f"--ray {self.address}: {msg}") from None
        self._ray = ray
        return ray

    def window(self) -> int:
        """Runs kept in flight: twice the cluster's CPUs, so every worker stays busy while
        the results of finished runs travel back, without queueing thousands of results."""
        cpus = int(self._ray.cluster_resources().get("CPU", 1)) if self._ray else 1
        return max(2, 2 * cpus)

    def run(self, episode: EpisodeFn, tasks: list[Task], done: Done) -> None:
        ray = self.connect()
        remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_run_remote)
        ep = ray.put(episode)
        queue = list(tasks)
        flight: dict[Any, Task] = {}
        window = self.window()
        try:
            while queue or flight:
                while queue and len(flight) < window:
                    t = queue.pop(0)
                    flight[remote.remote(ep, t)] = t
                ready, _ = ray.wait(list(flight), num_returns=1)
                for ref in ready:
                    t = flight.pop(ref)
                    try:
                        files, err, node = ray.get(ref)
                    except ray.exceptions.RayError as e:  # the worker or its node died
                        done(t, f"{type(e).__name__}: {str(e).splitlines()[0][:250]}")
                        continue
                    write_back(t[3], files)
                    self.nodes[node] = self.nodes.get(node, 0) + 1
                    done(t, err)
        except BaseException:
            for ref in flight:  # Ctrl-C, the memory watchdog: stop what is running
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished or gone
                    pass
            raise

    def close(self) -> None:
        """Say where the runs went; shut down a Ray instance this executor started (a joined
        cluster keeps running)."""
        if self.nodes:
            k = len(self.nodes)
            print(f"ray: {sum(self.nodes.values())} runs on {k} node{'s' * (k != 1)} "
                  f"({self.name})", file=sys.stderr)  # fmt: skip
            self.nodes = {}
        if self._ray is not None and self._started:
            self._ray.shutdown()
        self._ray, self._started = None, False

"""The load process: Locust run as a library, sending real Triton inference requests.

Run as ``python -m bridge.locust_run SPEC.json`` by `bridge.load.LoadGenerator`, in its own
process because Locust monkey-patches the interpreter with gevent (and must be imported
before anything that imports ``ssl``/``urllib3``: NOTES.md), which must not reach the
process that trains or evaluates.

Closed loop (``traffic.mode: closed``): a `LoadTestShape` sets the user count to the kisim
pattern's level each second; each user sends one request, waits for the answer, then
thinks ``between(min, max)``. Open loop: arrivals at the pattern's rate (Poisson or
deterministic gaps), each request in its own greenlet. Every request is a 1x3x224x224 FP32
tensor sent as Triton binary data (no JSON float encoding) to an endpoint chosen per
request by `bridge.router.Router`, whose endpoint lists and placement share the parent
rewrites in ``routing.json``. Records go to the event file described in `bridge.records`.
It starts sending at the episode's t0, which the parent writes into the routing file once
the process reported ready (``r`` line), and stops by itself ``max_runtime_s`` later, on
SIGTERM, or when its parent dies.
"""

# Locust first: it monkey-patches ssl/socket via gevent before anything else imports them.
import locust  # noqa: F401  isort: skip
from locust import LoadTestShape, User, between, task  # isort: skip
from locust.env import Environment  # isort: skip

import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.pool  # noqa: E402
import numpy as np  # noqa: E402
import tritonclient.http as th  # noqa: E402

from bridge.router import Router  # noqa: E402
from kisim.core.patterns import make_pattern  # noqa: E402


class EventLog:
    """Buffered writer of the event file; `flush` appends a watermark.

    Written with ``os.write`` and exact byte accounting: when the disk is full (ENOSPC)
    the unwritten tail stays here and the next flush tries again, so a full disk delays
    the records (the parent waits for the watermark) but never loses or repeats one."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._buf: list[str] = []
        self._pending = b""

    def add(self, line: str) -> None:
        self._buf.append(line)

    def flush(self) -> None:
        now = time.time()  # every event stamped before now is in the buffer
        self._buf.append(f"w,{now:.6f}")
        self._pending += ("\n".join(self._buf) + "\n").encode()
        self._buf.clear()
        while self._pending:
            try:
                n = os.write(self._fd, self._pending)
            except OSError:  # ENOSPC and the like: keep the tail for the next flush
                return
            self._pending = self._pending[n:]


class Sender:
    """One inference request: pick an endpoint, send, record."""

    def __init__(self, spec: dict[str, Any], router: Router, log: EventLog, env: Any) -> None:
        self.spec, self.router, self.log, self.env = spec, router, log, env
        self.caches: list[dict[str, Any]] = []  # every user's {endpoint: client}
        self.busy: dict[int, int] = {}  # id(client) -> requests in flight on it
        x = np.random.default_rng(spec["seed"]).random((1, 3, 224, 224), dtype=np.float32)
        self.input = th.InferInput(spec["input_name"], [1, 3, 224, 224], "FP32")
        self.input.set_data_from_numpy(x, binary_data=True)
        self.output = th.InferRequestedOutput(spec["output_name"], binary_data=True)

    def client(self, cache: dict[str, Any], endpoint: str, concurrency: int = 1) -> Any:
        c = cache.get(endpoint)
        if c is None:
            t = self.spec["timeout_s"]
            c = cache[endpoint] = th.InferenceServerClient(
                endpoint, concurrency=concurrency, connection_timeout=t, network_timeout=t
            )
        return c

    def send(self, cache: dict[str, Any], concurrency: int = 1) -> None:
        pool, ep = self.router.pick()
        t = time.time()
        p0 = time.perf_counter()
        self.log.add(f"s,{t:.6f},{pool}")
        err: Exception | None = None
        if ep is None:
            err = ConnectionError("no ready endpoint")
        else:
            c = self.client(cache, ep, concurrency)
            self.busy[id(c)] = self.busy.get(id(c), 0) + 1
            try:
                r = c.infer(self.spec["model_name"], [self.input], outputs=[self.output])
                if r.as_numpy(self.spec["output_name"]) is None:
                    err = ValueError("no output tensor")
            except Exception as e:  # noqa: BLE001 - every failure is a failed request
                err = e
                cache.pop(ep, None)  # a broken connection is not reused
            except BaseException:  # killed mid-request (Locust's stop timeout): still a record
                lat_ms = (time.perf_counter() - p0) * 1000.0
                self.log.add(f"c,{t:.6f},{lat_ms:.3f},0,{pool},{ep}")
                self.env.events.request.fire(
                    request_type="infer", name=pool, response_time=lat_ms, response_length=0,
                    exception=RuntimeError("killed in flight"), context={},
                )  # fmt: skip
                raise
            finally:
                self.busy[id(c)] -= 1
        lat_ms = (time.perf_counter() - p0) * 1000.0
        self.log.add(f"c,{t:.6f},{lat_ms:.3f},{int(err is None)},{pool},{ep or '-'}")
        self.env.events.request.fire(
            request_type="infer", name=pool, response_time=lat_ms, response_length=0,
            exception=err, context={},
        )  # fmt: skip
        if ep is not None:
            self.retire()

    def retire(self) -> None:
        """Close idle connections to endpoints that left the lists (a terminating replica
        waits for its open HTTP connections before it exits, as Triton does on a pod)."""
        valid = {e for eps in self.router.endpoints.values() for e in eps}
        for cache in self.caches:
            for ep in [e for e in cache if e not in valid]:
                c = cache[ep]
                if not self.busy.get(id(c)):
                    del cache[ep]
                    self.busy.pop(id(c), None)
                    c.close()

    def forget(self, cache: dict[str, Any]) -> None:
        """A stopped user's connections are closed (its greenlet is gone)."""
        for c in cache.values():
            c.close()
        cache.clear()
        if cache in self.caches:
            self.caches.remove(cache)


def _watch_routing(
    path: Path, router: Router, sender: Sender, clock: dict[str, float], period_s: float
) -> None:
    mtime = 0.0
    while True:
        try:
            m = path.stat().st_mtime
            if m != mtime:
                mtime = m
                r = json.loads(path.read_text())
                router.endpoints = r["endpoints"]
                router.gpu_share = r["gpu_share"]
                if r.get("t0_unix") is not None:
                    clock.setdefault("t0", float(r["t0_unix"]))
                sender.retire()
        except (OSError, ValueError, KeyError):
            pass
        gevent.sleep(period_s)


def _flusher(log: EventLog, period_s: float) -> None:
    while True:
        gevent.sleep(period_s)
        log.flush()


def main(spec_path: str) -> int:
    spec: dict[str, Any] = json.loads(Path(spec_path).read_text())
    clock: dict[str, float] = {}  # t0 arrives through the routing file once the parent is set
    t0 = end = 0.0
    pattern = make_pattern(spec["pattern"], spec["pattern_params"], spec["seed"])
    router = Router(mode=spec["routing_mode"], rng=random.Random(spec["seed"]))
    log = EventLog(Path(spec["events_file"]))
    wmin, wmax = spec["wait_time_s"]
    sender: Sender

    class TritonUser(User):
        wait_time = between(wmin, wmax)

        def on_start(self) -> None:
            self.clients: dict[str, Any] = {}
            sender.caches.append(self.clients)

        def on_stop(self) -> None:
            sender.forget(self.clients)

        @task
        def infer(self) -> None:
            sender.send(self.clients)

    class PatternShape(LoadTestShape):
        """Users = the kisim pattern's level at the episode's time (closed loop)."""

        users = -1

        def tick(self) -> tuple[int, float] | None:
            now = time.time()
            if now >= end:
                return None
            n = max(0, int(round(pattern.level(now - t0))))
            if n != self.users:
                self.users = n
                log.add(f"u,{now:.6f},{n}")
            return n, 100.0  # Locust's fastest comfortable rate: ~instant against 1 s ticks

    closed = spec["mode"] == "closed"
    env = Environment(
        user_classes=[TritonUser],
        shape_class=PatternShape() if closed else None,
        stop_timeout=spec["timeout_s"],
    )
    sender = Sender(spec, router, log, env)
    runner = env.create_local_runner()
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    routing = Path(spec["routing_file"])
    gevent.spawn(_watch_routing, routing, router, sender, clock, spec["routing_poll_s"])
    log.add(f"r,{time.time():.6f}")  # ready: imports done, waiting for the clock
    log.flush()
    give_up = time.time() + spec["max_runtime_s"]
    while "t0" not in clock and not stopping.is_set() and time.time() < give_up:
        gevent.sleep(spec["routing_poll_s"])
    if "t0" not in clock:
        return 1
    t0 = clock["t0"]
    end = t0 + spec["max_runtime_s"]
    gevent.spawn(_flusher, log, spec["flush_s"])
    gevent.sleep(max(0.0, t0 - time.time()))
    csv_writer, csv_greenlet = _start_csv(env, spec.get("csv_base"))
    if closed:
        runner.start_shape()
    else:
        gevent.spawn(_open_loop, spec, pattern, sender, t0, end)
    stopping.wait(timeout=max(0.0, end - time.time()))
    runner.quit()
    log.flush()
    if csv_writer is not None:
        gevent.sleep(1.1)  # one more pass of the writer: the files show the final stats
        csv_greenlet.kill()
        csv_writer.close_files()
    return 0


def _start_csv(env: Any, base: str | None) -> tuple[Any, Any]:
    """Locust's own CSVs (`--csv BASE --csv-full-history`): BASE_stats.csv, _stats_history.csv
    (a row per second and per request name plus Aggregated; percentiles over Locust's
    10 s "current" window), _failures.csv, _exceptions.csv."""
    if not base:
        return None, None
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

    w = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, base, full_history=True)
    return w, gevent.spawn(w.stats_writer)


def _open_loop(spec: dict[str, Any], pattern: Any, sender: Sender, t0: float, end: float) -> None:
    """Arrivals at the pattern's rate; in-flight requests are capped (then counted failed)."""
    rng = random.Random(spec["seed"] + 1)
    group = gevent.pool.Pool(spec["max_in_flight"])
    cache: dict[str, Any] = {}
    sender.caches.append(cache)
    poisson = spec["arrival"] == "exponential"
    nxt = time.time()
    while nxt < end:
        rate = pattern.level(nxt - t0)
        if rate <= 0:
            nxt += 0.1
            gevent.sleep(max(0.0, nxt - time.time()))
            continue
        nxt += rng.expovariate(rate) if poisson else 1.0 / rate
        gevent.sleep(max(0.0, nxt - time.time()))
        if group.full():
            sender.log.add(f"s,{nxt:.6f},-")
            sender.log.add(f"c,{nxt:.6f},0.000,0,-,client-overloaded")
            continue
        group.spawn(sender.send, cache, spec["max_in_flight"])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1]))

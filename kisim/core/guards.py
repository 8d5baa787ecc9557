"""Resource guards: refuse a twin run the machine cannot hold, and stop one that grows past it.

A scenario with a billion users, or a duration of 1e9 s, once ran until the kernel's
OOM killer took it (and, on a shared machine, other work) down. Before a run starts,
`check` estimates its requests and peak memory from the scenario alone, and refuses,
in one line, what exceeds the budget: by default half the machine's memory and
`DEFAULT_MAX_REQUESTS` requests per run (``--max-requests`` / ``--allow-large`` lift
them). The estimate is deliberately simple (see `estimate`), so `memory_watchdog`
backs it up while the run goes: it samples the resident memory of this process and its
children and stops the run cleanly, through a `ResourceError` raised in the main thread,
once they pass the budget.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kisim.core.errors import ResourceError
from kisim.core.sketch import resolve_latency_stats

MEMORY_FRACTION = 0.5  # default budget: this share of the machine's memory
LARGE_MEMORY_FRACTION = 0.9  # with --allow-large the watchdog still stops here
DEFAULT_MAX_REQUESTS = 2e9  # per run: ~30-60 min of twin time on one core
BASE_BYTES = 400 * 2**20  # Python, numpy, SimPy, the twin: measured ~230 MB resident
BYTES_PER_WINDOW = 16 * 2**10  # a Window, its timeline row and histogram: measured ~8 KB
BYTES_PER_IN_FLIGHT = 256  # a user or queued request in the data plane: measured ~80 B
BYTES_PER_RECORD = 128  # exact latency mode, per request: measured ~49 B at peak (below)
"""Every request's latency and queue wait kept (`metrics.latency_stats: exact`, and `auto`
up to `kisim.core.sketch.AUTO_EXACT_MAX_REQUESTS`): 8 B each per window and the window's
sorted latencies (8 B), and at the end the run's concatenations and the summary's
temporaries. Measured: peak RSS of an exact run minus the same run sketched, open loop
1,000 req/s on the default scenario's GPU pool, 1 M and 4 M requests: 46 MiB and 186 MiB
(~49 B per request, the same slope between the two); sketch mode keeps none (flat)."""
PATTERN_SAMPLES = 4096  # level(t) evaluations (every second of runs up to this long)
BYTES_PER_PLATFORM_REQUEST = 8
"""A platform model keeps every answered request's latency (`twin.platform.serving`: one
double in an `array('d')`), whatever the front door's latency mode."""


@dataclass(frozen=True)
class Limits:
    """What a command allows: `memory_bytes` None = `MEMORY_FRACTION` of the machine."""

    max_requests: float | None = None
    memory_bytes: int | None = None
    allow_large: bool = False

    def memory_budget(self) -> int:
        if self.memory_bytes is not None:
            return self.memory_bytes
        frac = LARGE_MEMORY_FRACTION if self.allow_large else MEMORY_FRACTION
        return int(machine_memory() * frac)

    def request_budget(self) -> float:
        return self.max_requests if self.max_requests is not None else DEFAULT_MAX_REQUESTS


@dataclass(frozen=True)
class Estimate:
    """What one run of a scenario will roughly take."""

    requests: float  # requests the twin will simulate
    in_flight: float  # peak users (closed loop) or queued requests (open loop)
    windows: float
    memory_bytes: float  # peak resident memory of the process running it
    exact: bool = False  # every request's latency kept (records grow with requests)


def machine_memory() -> int:
    """Physical memory in bytes (MemTotal), or 8 GiB where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _levels(sc: Any) -> list[float]:
    from kisim.core.patterns import make_pattern

    p = sc.traffic.pattern
    pat = make_pattern(p.name, p.params, sc.seed)
    n = int(min(PATTERN_SAMPLES, math.floor(sc.duration_s) + 1))
    step = sc.duration_s / max(n - 1, 1)
    return [max(float(pat.level(i * step)), 0.0) for i in range(n)]


def capacity_rps(sc: Any) -> float:
    """Requests/s every pool at max replicas could serve, from the service curves."""
    total = 0.0
    for cfg in sc.pools.values():
        dev = sc.calibration.devices.get(cfg.device)
        if dev is None or cfg.max_replicas == 0:
            continue
        b = cfg.batching.max_batch_size if cfg.batching.enabled else 1
        t_s = max(dev.service.time_ms(b), 1e-3) / 1000.0
        total += cfg.max_replicas * cfg.instances * b / t_s
    return total


def estimate(sc: Any) -> Estimate:
    """Requests, peak in-flight work and memory of one twin run of scenario `sc`.

    Closed loop: each user sends at most one request per think time plus a minimal
    service time, and no more than the pools' capacity serves; open loop: every arrival
    is simulated, and what capacity cannot serve waits in memory. In exact latency mode
    (the scenario's `metrics.latency_stats` as the run resolves it) every request also
    keeps `BYTES_PER_RECORD`. A `platform:` section adds its models' Poisson arrivals
    (`rate_rps` x the pattern's mean level over its peak, or `rate_rps`), each keeping
    `BYTES_PER_PLATFORM_REQUEST`.
    """

    levels = _levels(sc)
    mean, peak, dur = sum(levels) / len(levels), max(levels), float(sc.duration_s)
    cap = capacity_rps(sc)
    if sc.traffic.mode == "closed":
        think = sum(sc.traffic.wait_time_s) / 2
        fastest = min((d.service.time_ms(1) for d in sc.calibration.devices.values()),
                      default=1.0) / 1000.0  # fmt: skip
        per_user = 1.0 / max(think + fastest, 1e-3)
        requests = min(mean * per_user, cap) * dur + peak
        in_flight = peak
    else:
        requests = mean * dur
        in_flight = max(requests - cap * dur, 0.0) + peak
    windows = math.ceil(dur / sc.window_s)
    exact = resolve_latency_stats(sc) == "exact"
    mem = BASE_BYTES + windows * BYTES_PER_WINDOW + in_flight * BYTES_PER_IN_FLIGHT
    if exact:
        mem += requests * BYTES_PER_RECORD
    platform = getattr(sc, "platform", None)
    if platform is not None:
        share = mean / peak if peak > 0 else 0.0
        extra = sum(m.rate_rps * (share if m.follow_pattern else 1.0) * dur
                    for m in platform.models.values())  # fmt: skip
        requests += extra
        mem += extra * BYTES_PER_PLATFORM_REQUEST
    return Estimate(requests, in_flight, windows, mem, exact)


def _gib(b: float) -> str:
    return f"{b / 2**30:.3g} GiB"


def check(sc: Any, limits: Limits, parallel: int = 1, source: str | None = None) -> Estimate:
    """The run's estimate, or a ResourceError naming the scenario if it exceeds the budget.

    `parallel` runs share the memory budget (``kisim eval --jobs``)."""
    where = source or getattr(sc, "source", "scenario")
    est = estimate(sc)
    if not all(math.isfinite(x) for x in (est.requests, est.memory_bytes)):
        raise ResourceError(f"{where}: the load is not finite (pattern level or duration)")
    if limits.allow_large:
        return est
    if est.requests > limits.request_budget():
        raise ResourceError(
            f"{where}: a run would simulate ~{est.requests:.3g} requests, over the budget of "
            f"{limits.request_budget():.3g} (raise it with --max-requests N, or --allow-large)"
        )
    need, budget = est.memory_bytes * max(parallel, 1), limits.memory_budget()
    if need > budget:
        par = f" x {parallel} parallel runs" if parallel > 1 else ""
        kept = (f", every latency of ~{est.requests:.3g} requests kept: metrics.latency_stats "
                "exact; sketch keeps none" if est.exact else "")  # fmt: skip
        raise ResourceError(
            f"{where}: a run would need ~{_gib(est.memory_bytes)}{par} of memory "
            f"({est.in_flight:.3g} users or queued requests, {est.windows:.3g} windows{kept}), "
            f"over the budget of {_gib(budget)} (half the machine's; --allow-large to run anyway)"
        )
    return est


# --------------------------------------------------------------------------- watchdog


def _rss(pid: int | str) -> int:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[str]:
    out: list[str] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += (task / "children").read_text().split()
    except OSError:
        pass
    return out


def resident_bytes(pid: int | None = None) -> int:
    """Resident memory of a process and its children (Linux /proc; 0 elsewhere)."""
    pid = pid or os.getpid()
    return _rss(pid) + sum(_rss(c) for c in _children(pid))


@contextmanager
def memory_watchdog(limits: Limits, period_s: float = 0.25) -> Iterator[None]:
    """While the body runs, stop it with a ResourceError once memory passes the budget.

    A thread samples `resident_bytes`; past the budget it delivers SIGUSR1 to the main
    thread (`signal.pthread_kill`), whose handler raises, so the body unwinds through its
    own clean-up (``finally`` blocks, the harness's bookkeeping) as it would on Ctrl-C.
    Outside the main thread, or without /proc, it does nothing.
    """
    if threading.current_thread() is not threading.main_thread() or not Path("/proc").is_dir():
        yield
        return
    budget = limits.memory_budget()
    stop, seen = threading.Event(), {"rss": 0}

    def _raise(signum: int, frame: object) -> None:
        raise ResourceError(f"memory use reached {_gib(seen['rss'])}, over the budget of "
                            f"{_gib(budget)}; stopped the run")  # fmt: skip

    def _watch() -> None:
        main = threading.main_thread().ident
        while not stop.wait(period_s):
            seen["rss"] = resident_bytes()
            if seen["rss"] > budget and main is not None:
                signal.pthread_kill(main, signal.SIGUSR1)
                return

    old = signal.signal(signal.SIGUSR1, _raise)
    t = threading.Thread(target=_watch, name="kisim-memory-watchdog", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        signal.signal(signal.SIGUSR1, old)


@contextmanager
def guarded(sc: Any, limits: Limits, parallel: int = 1) -> Iterator[Estimate]:
    """`check` the scenario, then run the body under `memory_watchdog`."""
    est = check(sc, limits, parallel)
    with memory_watchdog(limits):
        yield est

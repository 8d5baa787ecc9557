"""Real fault injection on the local stack: what breaks, when, and how it is undone.

A schedule of `RealFault`s (``--inject kill:cpu-0@6s,prometheus-restart@8s+6s``) runs in
episode time: `FaultInjector.poll` is called from the backend's wall-clock loop (every
``tick_s``) and injects what is due, then undoes what has run its course; `restore`
undoes everything still active (the backend calls it before the trace is read and again
when it closes). Every injection and undo is a lifecycle event (``fault``/``restored``),
so it lands in the run's ``trace/events.csv`` with its time, kind and target.

The faults and their cluster counterparts:

* ``kill:TARGET`` — SIGKILL to every process of a replica (the container's processes, as
  an OOM kill or ``kill -9`` ends them). The local actuator takes it out of the endpoints
  and starts a replacement, as the kubelet restarts a crashed container.
* ``sigstop:TARGET+D`` — SIGSTOP to every process of a replica for D s, then SIGCONT (a
  frozen container, as ``docker pause`` / the cgroup freezer does; a hung process). It
  stays in the endpoints: locally no readinessProbe watches a ready replica.
* ``prometheus-restart+D`` — Prometheus is stopped (SIGTERM) for D s, then started again
  on the same port and TSDB (a restarted Prometheus pod with a persistent volume).
* ``disk-full+D`` — the run directory's filesystem is filled with a filler file until the
  kernel answers ENOSPC, for D s, then the filler is removed. That really fills the disk,
  so it is refused when the filesystem has more than `DISK_FULL_MAX_FREE` free: put the
  run directory on a small filesystem (a tmpfs) to use it.

TARGET is a replica name (``cpu-0``) or a pool name (its oldest serving replica then).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bridge.lifecycle import ReplicaEvent
from kisim.core.errors import BackendError, KisimError

if TYPE_CHECKING:
    from bridge.backend import ClusterBackend

FaultKind = Literal["kill", "sigstop", "prometheus-restart", "disk-full"]
KINDS: tuple[FaultKind, ...] = ("kill", "sigstop", "prometheus-restart", "disk-full")
TARGETED: tuple[FaultKind, ...] = ("kill", "sigstop")
DEFAULT_DURATION_S = 10.0  # sigstop, prometheus-restart, disk-full without "+D"
DISK_FULL_MAX_FREE = 1 << 30  # bytes: filling more than 1 GiB of a real disk is refused
FILLER = ".kisim-disk-full"
_ITEM = re.compile(
    r"^(?P<kind>[a-z-]+)(?::(?P<target>[A-Za-z0-9_.-]+))?"
    r"@(?P<at>[0-9]+(?:\.[0-9]*)?)s?(?:\+(?P<dur>[0-9]+(?:\.[0-9]*)?)s?)?$"
)


@dataclass(frozen=True, slots=True)
class RealFault:
    """One scheduled fault: `kind` on `target` at episode second `at_s` for `duration_s`."""

    kind: FaultKind
    at_s: float
    target: str = ""
    duration_s: float = 0.0  # 0 for kill (the replacement is the actuator's business)

    def spec(self) -> str:
        t = f":{self.target}" if self.target else ""
        d = f"+{self.duration_s:g}s" if self.kind != "kill" else ""
        return f"{self.kind}{t}@{self.at_s:g}s{d}"


def parse_faults(text: str | None, flag: str = "--inject") -> tuple[RealFault, ...]:
    """``kind[:target]@Ts[+Ds]``, comma-separated; a bad item is a one-line KisimError."""
    out: list[RealFault] = []
    for item in (x.strip() for x in (text or "").split(",")):
        if not item:
            continue
        m = _ITEM.match(item)
        if m is None:
            raise KisimError(f"{flag} '{item}': expected KIND[:TARGET]@SECONDS[+SECONDS], "
                             f"e.g. kill:cpu-0@20s or sigstop:cpu@30s+10s")  # fmt: skip
        kind, target = m["kind"], m["target"] or ""
        if kind not in KINDS:
            raise KisimError(f"{flag} '{item}': unknown fault '{kind}' (known: {', '.join(KINDS)})")
        if kind in TARGETED and not target:
            raise KisimError(f"{flag} '{item}': {kind} needs a target (a replica like cpu-0, "
                             "or a pool)")  # fmt: skip
        if kind not in TARGETED and target:
            raise KisimError(f"{flag} '{item}': {kind} takes no target")
        if kind == "kill" and m["dur"] is not None:
            raise KisimError(f"{flag} '{item}': kill takes no duration (the replica is replaced)")
        dur = 0.0 if kind == "kill" else float(m["dur"] or DEFAULT_DURATION_S)
        if kind != "kill" and dur <= 0:
            raise KisimError(f"{flag} '{item}': the duration must be > 0")
        out.append(RealFault(kind, float(m["at"]), target, dur))  # type: ignore[arg-type]
    return tuple(sorted(out, key=lambda f: f.at_s))


def check_faults(faults: tuple[RealFault, ...], backend: str, run_root: Path) -> None:
    """What cannot be injected here ends the command before anything starts."""
    if not faults:
        return
    if backend != "local":
        raise KisimError("--inject: real fault injection runs on --backend local only (it "
                         "signals local processes and restarts the local Prometheus)")  # fmt: skip
    if any(f.kind == "disk-full" for f in faults):
        free = _free_bytes(run_root)
        if free > DISK_FULL_MAX_FREE:
            raise KisimError(
                f"--inject disk-full: {run_root} is on a filesystem with {free / 2**30:.1f} GiB "
                f"free; filling it is refused above {DISK_FULL_MAX_FREE / 2**30:g} GiB (put --out "
                "on a small filesystem, e.g. a tmpfs: docs/faults.md)"
            )


def _free_bytes(path: Path) -> int:
    p = path.resolve()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


@dataclass
class _Active:
    fault: RealFault
    until_unix: float
    target: str  # what was hit (a replica's name once resolved)


@dataclass
class FaultInjector:
    """Injects a schedule into a running `ClusterBackend` (see the module doc)."""

    faults: tuple[RealFault, ...]
    run_dir: Path | None = None  # disk-full fills this directory's filesystem
    events: list[ReplicaEvent] = field(default_factory=list)
    _due: list[RealFault] = field(default_factory=list)
    _active: list[_Active] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rearm()

    def rearm(self) -> None:
        """A new episode: the whole schedule is due again (episode time restarts at 0)."""
        self._due = sorted(self.faults, key=lambda f: f.at_s)

    def poll(self, b: ClusterBackend, t_episode: float) -> None:
        """Inject what is due at `t_episode`, undo what has run its course."""
        now = time.time()
        for a in [a for a in self._active if now >= a.until_unix]:
            self._undo(b, a)
        while self._due and self._due[0].at_s <= t_episode:
            self._inject(b, self._due.pop(0))

    def restore(self, b: ClusterBackend) -> None:
        """Undo every active fault now (idempotent); faults not yet due are dropped."""
        self._due = []
        for a in list(self._active):
            self._undo(b, a)

    # ------------------------------------------------------------------ internals

    def _event(self, pool: str, target: str, kind: str, detail: str) -> None:
        self.events.append(ReplicaEvent(time.time(), pool, target, kind, detail))  # type: ignore[arg-type]

    def _inject(self, b: ClusterBackend, f: RealFault) -> None:
        try:
            pool, target, detail = self._do(b, f)
        except (BackendError, OSError) as e:  # a fault that cannot land is recorded, not fatal
            self._event("-", f.target or f.kind, "fault", f"{f.kind} not injected: {e}")
            return
        self._event(pool, target, "fault", f"{f.kind} {detail}".strip())
        if f.kind != "kill":
            self._active.append(_Active(f, time.time() + f.duration_s, target))

    def _do(self, b: ClusterBackend, f: RealFault) -> tuple[str, str, str]:
        if f.kind in TARGETED:
            sig = signal.SIGKILL if f.kind == "kill" else signal.SIGSTOP
            signaller = getattr(b.actuator, "signal_replica", None)
            if signaller is None:
                raise BackendError("this actuator cannot signal replicas (local only)")
            pool, name, pid = signaller(f.target, sig)
            return pool, name, f"{signal.Signals(sig).name} pid={pid}"
        if f.kind == "prometheus-restart":
            if b.prometheus is None:
                raise BackendError("no local Prometheus to stop")
            b.prometheus.pause()
            return "-", "prometheus", f"stopped {b.prometheus.url} for {f.duration_s:g}s"
        if self.run_dir is None:
            raise BackendError("no run directory to fill")
        n = fill_disk(self.run_dir / FILLER)
        return "-", "run-dir", f"filled {n} bytes until ENOSPC for {f.duration_s:g}s"

    def _undo(self, b: ClusterBackend, a: _Active) -> None:
        self._active.remove(a)
        f = a.fault
        try:
            if f.kind == "sigstop":
                pool, name, pid = b.actuator.signal_replica(a.target, signal.SIGCONT)  # type: ignore[attr-defined]
                self._event(pool, name, "restored", f"sigstop SIGCONT pid={pid}")
            elif f.kind == "prometheus-restart" and b.prometheus is not None:
                b.prometheus.resume()
                self._event("-", "prometheus", "restored", f"prometheus-restart {b.prometheus.url}")
            elif f.kind == "disk-full" and self.run_dir is not None:
                (self.run_dir / FILLER).unlink(missing_ok=True)
                self._event("-", "run-dir", "restored", "disk-full filler removed")
        except (BackendError, OSError) as e:
            self._event("-", a.target, "restored", f"{f.kind} not undone: {e}")


def fill_disk(path: Path, chunk: int = 1 << 20) -> int:
    """Append zeros to `path` until the filesystem answers ENOSPC; returns bytes written.
    Refused (BackendError) on a filesystem with more than `DISK_FULL_MAX_FREE` free."""
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    if free > DISK_FULL_MAX_FREE:
        raise BackendError(f"{path.parent}: {free / 2**30:.1f} GiB free; filling more than "
                           f"{DISK_FULL_MAX_FREE / 2**30:g} GiB is refused")  # fmt: skip
    n = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = chunk
        block = bytes(chunk)
        while size >= 512:
            try:
                n += os.write(fd, block[:size])
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                size //= 8  # fill the last blocks too
        try:
            os.fsync(fd)
        except OSError:
            pass
    finally:
        os.close(fd)
    return n

"""Child processes of the local stack: started so they cannot outlive kisim.

Every child gets its own session (Ctrl-C in the terminal reaches kisim only, which then
stops the children in order: routing first, then servers) and ``PR_SET_PDEATHSIG`` =
SIGTERM, so a killed kisim still takes its servers down. PDEATHSIG fires when the
*thread* that forked exits, so spawn from long-lived threads only.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def spawn(
    cmd: Sequence[str], log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `cmd` with stdout+stderr appended to `log`, in a new session."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as f:
        return subprocess.Popen(
            list(cmd),
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            preexec_fn=_child_setup,  # noqa: PLW1509 - only prctl, async-signal-safe enough
        )


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send `sig` to the child's whole process group (its session: every process it
    started), as a container runtime signals every process of a container."""
    if proc.poll() is None:
        _killpg(proc.pid, sig)


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """Ask politely (SIGTERM to the leader); `reap` finishes the job."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass


def reap(proc: subprocess.Popen[bytes], grace_s: float) -> int:
    """Wait up to `grace_s` for a terminated leader, then SIGKILL its whole group.

    The group is killed in any case afterwards: a leader that exited may leave members
    (tritonserver, backend stubs) behind, and those must not keep ports open.
    """
    try:
        rc = proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait(timeout=10)
    _killpg(proc.pid, signal.SIGKILL)
    return rc


def stop(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> int:
    terminate(proc)
    return reap(proc, grace_s)


def log_tail(log: Path, lines: int = 5) -> str:
    """The last lines of a child's log, for one-line error messages."""
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def wait_until(pred: Callable[[], bool], timeout_s: float, period_s: float = 0.05) -> bool:
    """Poll `pred()` until true or timeout; returns the last result."""
    end = time.monotonic() + timeout_s
    while True:
        if pred():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(period_s)

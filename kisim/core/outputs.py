"""Output paths checked before any work starts, and temporary files of dead processes removed.

A run that fails only when it writes its result wastes the run; so every command checks
``--out`` first (`check_out_dir`, `check_out_file`), by creating and removing a probe
file where the result will go, which also catches read-only mounts and /proc that
permission bits (and root) do not show. Nothing is created on the way: a refused
path leaves no folder behind.

Temporary files are named with the writer's pid (``.NAME.<pid>.EXT``,
``kisim-<pid>-KIND-XXXX``); a process killed mid-write leaves them, and `remove_stale`
deletes those whose pid no longer runs, the next time a run writes there.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from kisim.core.errors import KisimError


def _existing_ancestor(p: Path) -> Path:
    q = p.absolute()
    while not q.exists() and q != q.parent:
        q = q.parent
    return q


def _probe(d: Path, what: str) -> None:
    if not d.is_dir():
        raise KisimError(f"{what}: not writable ({d} is not a directory)")
    try:
        fd, name = tempfile.mkstemp(prefix=".kisim-probe-", dir=d)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise KisimError(f"{what}: not writable ({d}: {e.strerror or e})") from None


def check_out_dir(out: Path, flag: str = "--out") -> None:
    """OUT is, or can become, a writable directory; else one line naming it."""
    what = f"{flag} {out}"
    if out.exists() and not out.is_dir():
        raise KisimError(f"{what}: exists and is not a directory")
    _probe(out if out.is_dir() else _existing_ancestor(out), what)


def check_out_file(out: Path, flag: str = "--out") -> None:
    """OUT can be written as a file (its folder exists or can be made, and is writable)."""
    what = f"{flag} {out}"
    if out.is_dir():
        raise KisimError(f"{what}: is a directory (expected a file name)")
    _probe(_existing_ancestor(out.parent), what)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    """Delete entries of `folder` whose name matches `pattern` (group ``pid``) for a dead pid."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = pattern.fullmatch(p.name)
        if m is None or pid_alive(int(m.group("pid"))):
            continue
        try:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


HIDDEN_TEMP = re.compile(r"\..+\.(?P<pid>\d+)\.[A-Za-z0-9]+")
"""``.NAME.<pid>.EXT``: figures (`agents.evaluation.figures`) and models in progress."""

KISIM_TMP = re.compile(r"kisim-(?P<pid>\d+)-.+")
"""``kisim-<pid>-KIND-XXXX`` in the system's temporary folder (`tmp_dir`)."""


def tmp_dir(kind: str) -> Path:
    """A new ``/tmp/kisim-<pid>-KIND-XXXX`` folder; stale ones of dead kisims go first."""
    remove_stale(Path(tempfile.gettempdir()), KISIM_TMP)
    return Path(tempfile.mkdtemp(prefix=f"kisim-{os.getpid()}-{kind}-"))

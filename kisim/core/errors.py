"""User-facing errors: one line, naming the file, field or address at fault.

The CLI catches :class:`KisimError` and prints ``error: <message>`` with exit
code 2 and no traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class KisimError(Exception):
    """A problem with the user's input or environment, not with kisim."""


class ConfigError(KisimError):
    """A scenario, calibration or training file is missing, malformed or wrong."""


class TraceError(KisimError):
    """A trace bundle file is malformed (names file, line and column)."""


class BackendError(KisimError):
    """A backend could not do what was asked (unreachable server, bad state)."""


class Interrupted(KisimError):
    """Ctrl-C or SIGTERM stopped a command; the message says where the finished work is.

    Exit code 130 (as a shell reports SIGINT), not the 2 of an input error."""

    exit_code = 130


class ResourceError(KisimError):
    """A run would exceed, or did exceed, the memory or request budget (kisim.core.guards)."""


def is_interrupt(e: BaseException | None) -> bool:
    """Whether `e` is Ctrl-C (SIGTERM is turned into it) or an error it caused: one that lands
    inside a compiled (numba) function comes out as "SystemError: CPUDispatcher(...) returned a
    result with an exception set", the KeyboardInterrupt as its cause."""
    for _ in range(8):  # a chain is short; the bound only guards against a cycle
        if e is None:
            return False
        if isinstance(e, KeyboardInterrupt):
            return True
        e = e.__cause__ or e.__context__
    return False

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

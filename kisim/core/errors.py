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

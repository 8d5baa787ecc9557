"""Backends by name, loaded lazily from ``"module:Class"`` strings.

The env and the core never import an implementation: the twin and the bridge sit above
them (DESIGN.md, the layers contract in pyproject.toml) and are found here by name, as
policies are in `agents.policies`.
"""

from __future__ import annotations

import importlib

from kisim.core.backend import Backend
from kisim.core.errors import KisimError

BACKENDS: dict[str, str] = {"twin": "twin.backend:TwinBackend"}


def make_backend(name: str = "twin") -> Backend:
    """A fresh backend of kind `name` (only the twin is made without arguments)."""
    try:
        module, cls = BACKENDS[name].split(":")
    except KeyError:
        raise KisimError(f"unknown backend '{name}' (known: {', '.join(BACKENDS)})") from None
    backend: Backend = getattr(importlib.import_module(module), cls)()
    return backend

"""Free TCP ports on 127.0.0.1 for the local stack, never Triton's or Prometheus' defaults.

The acceptance check looks for anything left on 8000/8001/8002/9090 after a run; using
kernel-assigned ephemeral ports keeps the local stack off them and lets several stacks
(parallel tests, other agents) share the machine.
"""

from __future__ import annotations

import socket

RESERVED: frozenset[int] = frozenset({8000, 8001, 8002, 9090})
HOST = "127.0.0.1"


def free_port() -> int:
    """A port that was free a moment ago (the usual bind-to-0 race is accepted)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port: int = s.getsockname()[1]
        if port not in RESERVED:
            return port

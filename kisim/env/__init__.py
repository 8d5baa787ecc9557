"""The Gymnasium view of a backend: `KisimEnv`, observations, actions, rewards, episodes.

Imports only `kisim.core`; backends are given to it or made by name (`kisim.core.backends`).
"""

from typing import Any

__all__ = ["KisimEnv", "make_default"]


def __getattr__(name: str) -> Any:
    """`from kisim.env import KisimEnv` without loading the env for users of one preset."""
    if name in __all__:
        from kisim.env import environment

        return getattr(environment, name)
    raise AttributeError(f"module 'kisim.env' has no attribute '{name}'")

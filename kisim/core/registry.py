"""Named presets (load patterns, observations, actions, rewards) registered by decorator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar


class Named(Protocol):
    name: str


T = TypeVar("T", bound=type[Named])


def registrar(table: dict[str, T]) -> Callable[[T], T]:
    """A class decorator that files each class in `table` under its ``name``."""

    def register(cls: T) -> T:
        table[cls.name] = cls
        return cls

    return register

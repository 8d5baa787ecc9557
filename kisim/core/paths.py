"""Where the shipped configs are: beside the package in a wheel, at the top of a checkout.

A wheel carries ``configs/`` as ``kisim/configs`` (package data, pyproject.toml); an
editable install or a source checkout reads the repository's ``configs/``. Every
default path (scenario, training config, calibration) is built here, once.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]


def configs_dir() -> Path:
    """The folder of shipped YAML configs."""
    packaged = _PACKAGE / "configs"
    return packaged if packaged.is_dir() else _PACKAGE.parent / "configs"


def config_path(*parts: str) -> Path:
    """A shipped config, e.g. ``config_path("scenarios", "default.yaml")``."""
    return configs_dir().joinpath(*parts)


def default_scenario() -> Path:
    return config_path("scenarios", "default.yaml")

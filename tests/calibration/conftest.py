"""Synthetic bundles written by the twin with known parameters (`calibration.synth`).

Built once per session (the twin runs in well under a second per bundle); tests that
corrupt a bundle copy it first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from synthetic_truth import true_scenario

from calibration.synth import write_synthetic_bundle


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """step: batching max 8 / 2 ms into saturation; ramp-b1: batching off, 2 instances."""
    root = tmp_path_factory.mktemp("bundles")
    out = {
        "step": write_synthetic_bundle(
            root / "step",
            true_scenario(users=[4, 40, 100, 220], name="step"),
            1,
            name="syn-step",
            startup_samples=30,
        ),
        "inst2": write_synthetic_bundle(
            root / "inst2",
            true_scenario(
                users=[3, 20, 40, 60, 90],
                step_s=36.0,
                instances=2,
                batching={"enabled": False},
                name="inst2",
            ),
            2,
            name="syn-inst2",
            startup_samples=3,
        ),
        "held-out": write_synthetic_bundle(
            root / "held",
            true_scenario(users=[10, 150, 60, 240, 20], step_s=36.0, name="held"),
            3,
            name="syn-held-out",
            startup_samples=3,
        ),
    }
    return out


@pytest.fixture
def copy_bundle(bundles: dict[str, Path], tmp_path: Path):  # type: ignore[no-untyped-def]
    """A writable copy of a session bundle (for corrupting it)."""

    def make(key: str = "step") -> Path:
        dst = tmp_path / key
        shutil.copytree(bundles[key], dst)
        return dst

    return make

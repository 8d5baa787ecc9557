"""The experiment file of `kisim sim2real` (``kind: Sim2RealConfig``, configs/sim2real/).

One file names everything a run of the experiment needs, so that a rerun on another host is
the same experiment: the scenario (pools, SLO, workloads as ``traffic.pattern_params``), the
calibration the twin uses (fitted for the real backend by `kisim calibrate`), the policies,
the workloads and the seeds. Paths are relative to the file, as a scenario's are.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from kisim.core.config import load_model
from kisim.core.devices import API_VERSION, StrictModel
from kisim.core.errors import ConfigError


class TuneSpec(StrictModel):
    """How the rule baseline was (or is) tuned on the twin: `opponent` over its benchmark grid
    (agents.benchmark.opponents), mean episode reward over every workload, training seeds."""

    opponent: str = Field("kpa", description="Rule opponent tuned (benchmark name).")
    seeds: int = Field(3, ge=1, le=50, description="Training seeds (1000, 1001, ...).")


class Sim2RealSpec(StrictModel):
    """Policies x workloads x seeds, on real serving and in the twin."""

    apiVersion: str = Field(API_VERSION)
    kind: str = Field("Sim2RealConfig")
    name: str = Field(description="Recorded in sim2real.json and the report.")
    description: str = ""
    scenario: Path = Field(description="Scenario YAML (relative to this file).")
    calibration: Path | None = Field(
        None, description="Calibration the twin uses (the one fitted for the real backend); "
        "default: the scenario's own.")  # fmt: skip
    policies: list[str] = Field(min_length=2, description="Policy specs (ranked per workload).")
    workloads: list[str] = Field(min_length=1, description="Load patterns of the scenario.")
    seeds: int = Field(5, ge=1, description="Seeds 0 .. seeds-1 per policy x workload.")
    duration_s: float | None = Field(None, gt=0, description="Seconds per run (default: the "
                                     "scenario's).")  # fmt: skip
    reference: str | None = Field(None, description="Reference policy of the tests (default hpa).")
    tune: TuneSpec = Field(default_factory=TuneSpec)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v != "Sim2RealConfig":
            raise ValueError(f"expected Sim2RealConfig, got {v!r}")
        return v

    @field_validator("policies", "workloads")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"names repeat: {', '.join(v)}")
        return v


def load_spec(path: Path) -> Sim2RealSpec:
    """The experiment file with its paths made absolute; errors name the file and field."""
    spec = load_model(Sim2RealSpec, path)
    base = Path(path).resolve().parent
    upd: dict[str, Path] = {"scenario": (base / spec.scenario).resolve()}
    if spec.calibration is not None:
        upd["calibration"] = (base / spec.calibration).resolve()
    spec = spec.model_copy(update=upd)
    for field in upd:
        p = getattr(spec, field)
        if not p.is_file():
            raise ConfigError(f"{path}: {field}: {p}: no such file")
    return spec

"""Scenario loading: defaults, `extends`, overrides, and errors that name file and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kisim.core.config import load_scenario, override, with_pattern
from kisim.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "configs" / "scenarios" / "default.yaml"


def test_every_shipped_scenario_loads_with_provenance() -> None:
    files = sorted((ROOT / "configs" / "scenarios").rglob("*.yaml"))
    assert len(files) >= 10
    for f in files:
        sc = load_scenario(f)
        assert sc.calibration.provenance.strip()


def test_pattern_scenarios_extend_the_default() -> None:
    base = load_scenario(DEFAULT)
    spike = load_scenario(ROOT / "configs" / "scenarios" / "patterns" / "spike.yaml")
    assert spike.traffic.pattern.name == "spike"
    assert spike.pools == base.pools and spike.calibration == base.calibration


def test_with_pattern_uses_pattern_params(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(f"extends: {DEFAULT}\nname: t\ntraffic:\n  pattern_params: {{spike: {{peak: 99}}}}\n")
    sc = with_pattern(load_scenario(f), "spike")
    assert sc.traffic.pattern.params["peak"] == 99


@pytest.mark.parametrize(
    ("yaml_extra", "field"),
    [
        ("traffic: {pattern: {name: nope}}", "traffic.pattern"),
        ("duration_s: -5", "duration_s"),
        ("pools: {gpu: {bogus: 1}}", "pools.gpu.bogus"),
        ("controller: {name: nope}", "controller"),
        ("traffic: {pattern: {name: constant, params: {level: -3}}}", "traffic.pattern"),
        ("pools: {cpu: {device: no-such-device}}", "pools.cpu.device"),
        ("traffic: {wait_time_s: [2, 1]}", "traffic"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, yaml_extra: str, field: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(f"extends: {DEFAULT}\nname: bad\n{yaml_extra}\n")
    with pytest.raises(ConfigError) as e:
        load_scenario(f)
    msg = str(e.value)
    assert str(f) in msg and field in msg and "\n" not in msg


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_scenario(tmp_path / "missing.yaml")
    f = tmp_path / "broken.yaml"
    f.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:.*line \d+"):
        load_scenario(f)


def test_extends_cycle_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_scenario(tmp_path / "a.yaml")


def test_override_validates() -> None:
    sc = load_scenario(DEFAULT)
    assert override(sc, "x", duration_s=30).duration_s == 30
    with pytest.raises(ConfigError, match="--duration"):
        override(sc, "--duration", duration_s=0)


def test_docs_cover_every_field() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen-scenario-doc.py")
    gen = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(gen)  # type: ignore[union-attr]
    from kisim.core.config import Calibration, Scenario

    doc = (ROOT / "docs" / "scenario.md").read_text()
    for row in gen.rows(Scenario) + gen.rows(Calibration):
        key = re.match(r"\| `([^`]+)`", row).group(1)  # type: ignore[union-attr]
        assert f"`{key}`" in doc, f"{key} missing: run scripts/gen-scenario-doc.py"


@pytest.mark.parametrize("name", ["flash-crowd", "hetero"])
def test_a_rebuilt_scenario_numbers_its_placements_as_the_file(name: str) -> None:
    # the replicas action numbers placements in the file's order (gpu_share's keys); the
    # sorted fingerprint text loses it, so runs are rebuilt from scenario_data
    import json

    from kisim.core.config import Scenario, resolved_json, scenario_data
    from kisim.env.context import build_context

    sc = load_scenario(ROOT / "configs" / "scenarios" / "suite" / f"{name}.yaml")
    assert list(sc.routing.placements) != sorted(sc.routing.placements)  # the case at stake
    again = Scenario.model_validate(scenario_data(sc))
    assert again.routing.placements == sc.routing.placements
    assert build_context(again).placements == build_context(sc).placements
    assert json.loads(resolved_json(again)) == json.loads(resolved_json(sc))  # same fingerprint
    sorted_back = Scenario.model_validate(json.loads(resolved_json(sc)))
    assert sorted_back.routing.placements != sc.routing.placements  # why not the sorted text

"""The recording floor: recordings of one experiment are paired, others are not; a copy is at
zero; independent recordings of the true model sit where sampling theory puts them."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import yaml
from synthetic_truth import true_scenario
from test_calibrate_cli import kisim

from calibration.bundle import load_bundle
from calibration.reproducibility import recording_floor, recording_pairs, unmatched
from calibration.synth import write_synthetic_bundle
from calibration.validate import validate

HELD_USERS = [10, 150, 60, 240, 20]  # the conftest's held-out schedule
SEEDS = 10
WINDOW_S = 12.0


@pytest.fixture(scope="module")
def repeats(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four more recordings of the held-out experiment (other seeds), named after their folder."""
    root = tmp_path_factory.mktemp("repeats")
    sc = true_scenario(users=HELD_USERS, step_s=36.0, name="held")
    return [
        write_synthetic_bundle(root / f"held-r{s}", sc, s, name=f"held-r{s}", startup_samples=3)
        for s in (4, 5, 6, 7)
    ]


def test_the_experiment_ignores_name_and_times(
    bundles: dict[str, Path], repeats: list[Path], tmp_path: Path
) -> None:
    ref, other = load_bundle(bundles["held-out"]), load_bundle(repeats[0])
    assert ref.experiment == other.experiment
    assert ref.experiment != load_bundle(bundles["step"]).experiment
    renamed = tmp_path / "renamed"
    shutil.copytree(bundles["held-out"], renamed)
    m = yaml.safe_load((renamed / "manifest.yaml").read_text())
    m["name"] = "another-name"
    m["recorded_at"] = "2030-01-01T00:00:00Z"
    (renamed / "manifest.yaml").write_text(yaml.safe_dump(m))
    assert load_bundle(renamed).experiment == ref.experiment
    m["pools"]["cpu"]["batching"]["max_queue_delay_us"] = 5000  # another experiment
    (renamed / "manifest.yaml").write_text(yaml.safe_dump(m))
    assert load_bundle(renamed).experiment != ref.experiment


def test_pairs_are_recordings_of_the_same_experiment_only(
    bundles: dict[str, Path], repeats: list[Path]
) -> None:
    held, step = load_bundle(bundles["held-out"]), load_bundle(bundles["step"])
    reps = [load_bundle(p) for p in repeats]
    pairs = recording_pairs([held, step], [*reps, held], WINDOW_S, 20)  # itself: not a pair
    assert sorted((p.reference, p.other) for p in pairs) == [
        ("held", f"held-r{s}") for s in (4, 5, 6, 7)
    ]
    assert unmatched([step], reps) == [str(p) for p in repeats]
    assert unmatched([held], reps) == []


def test_an_identical_recording_is_at_zero(bundles: dict[str, Path], tmp_path: Path) -> None:
    twin = tmp_path / "copy"
    shutil.copytree(bundles["held-out"], twin)
    held = load_bundle(bundles["held-out"])
    floor = recording_floor(recording_pairs([held], [load_bundle(twin)], WINDOW_S, 20))
    for key in ("throughput_mape", "p50_mape", "p95_mape", "p99_mape", "batch_size_mape"):
        assert floor[key] == 0.0
    assert floor["pairs"] == [["held", "copy"]]
    truth = true_scenario(users=[1]).calibration
    s = validate(truth, [held, load_bundle(twin)], seeds=1, window_s=WINDOW_S).summary()
    assert set(s["per_bundle"]) == {"held", "copy"}  # one name twice: told apart by folder


def test_independent_recordings_of_the_true_model_sit_at_the_theoretical_ratio(
    bundles: dict[str, Path], repeats: list[Path]
) -> None:
    """Recording vs recording differs by two samples' noise, sqrt(2) sigma; a twin seed vs the
    mean of the other N-1 by sqrt(1 + 1/(N-1)) sigma. With the true model on both sides the
    recording floor is sqrt(2 / (1 + 1/(N-1))) = 1.34 x the noise floor (N = 10). Each MAPE
    averages ~60 window errors whose |.| has a cv of ~0.75 (half-normal), ~10 % on the mean;
    the band allows 30 % either way (3 sigma)."""
    held = load_bundle(bundles["held-out"])
    res = validate(true_scenario(users=[1]).calibration, [held], seeds=SEEDS, window_s=WINDOW_S)
    noise = res.summary()["noise_floor"]
    floor = recording_floor(
        recording_pairs([held], [load_bundle(p) for p in repeats], WINDOW_S, 20)
    )
    expected = math.sqrt(2 / (1 + 1 / (SEEDS - 1)))
    ratios = [floor[k] / noise[k] for k in ("throughput_mape", "p50_mape", "p95_mape")]
    mean_ratio = sum(ratios) / len(ratios)
    assert expected * 0.7 < mean_ratio < expected * 1.3, (ratios, floor, noise)


def test_validate_cli_reports_both_floors(
    bundles: dict[str, Path], repeats: list[Path], tmp_path: Path
) -> None:
    cal = tmp_path / "truth.yaml"
    cal.write_text(yaml.safe_dump(true_scenario(users=[1]).calibration.model_dump(mode="json")))
    r = kisim(
        "validate", "--config", str(cal), str(bundles["held-out"]), "--seeds", "3", "--json",
        "--repeat", str(repeats[0].parent), "--repeat", str(bundles["step"]),
        "--out", str(tmp_path / "val"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"{bundles['step']}: no validated bundle is this experiment" in r.stderr
    s = json.loads(r.stdout)
    assert len(s["recording_floor"]["pairs"]) == 4
    (recordings,) = s["against_mean_of_recordings"]["experiments"].values()
    assert sorted(recordings) == sorted(["held", *(p.name for p in repeats)])
    for key in ("recording_floor", "against_mean_of_recordings"):
        assert 0 < s[key]["p50_mape"] < 0.15 and set(s[key]["bands"]) == {"<50%", "50-80%", ">80%"}
    md = (tmp_path / "val" / "validation.md").read_text()
    assert "| recording floor (recording vs recording) |" in md
    assert "| twin vs the mean of each experiment's recordings |" in md
    for ext in ("png", "pdf"):  # every recording and the twin, per window
        assert (tmp_path / "val" / f"recordings-syn-held-out.{ext}").is_file()
    r = kisim("validate", "--config", str(cal), str(bundles["held-out"]), "--repeat", str(tmp_path))
    assert r.returncode == 2 and "neither a bundle nor a folder of bundles" in r.stderr


def test_a_new_recording_of_a_fitted_experiment_is_flagged(
    bundles: dict[str, Path], repeats: list[Path]
) -> None:
    held, rep = load_bundle(bundles["held-out"]), load_bundle(repeats[0])
    truth = true_scenario(users=[1]).calibration
    fitted = truth.model_copy(
        update={"provenance": f"fitted-on: syn-held-out\nfitted-experiments: {held.experiment_id}"}
    )
    s = validate(fitted, [held, rep], seeds=1, window_s=WINDOW_S).summary()
    assert s["held_in"] == ["syn-held-out"]  # by name: the very recording it was fitted on
    assert s["repeats_of_fit"] == ["held-r4"]  # another recording of the same experiment
    s = validate(truth, [held], seeds=1, window_s=WINDOW_S).summary()
    assert s["held_in"] == [] and s["repeats_of_fit"] == []

"""`kisim benchmark` on part of a suite keeps the other scenarios' sections, rebuilt from OUT's
seeds.csv and tuned.json (`agents.benchmark.stored`), and refuses a section that no longer
describes what would run."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from agents.benchmark.run import run_benchmark
from kisim.core.errors import KisimError

ROOT = Path(__file__).resolve().parents[2]
SPIKE = ROOT / "configs" / "scenarios" / "patterns" / "spike.yaml"
STEP = ROOT / "configs" / "scenarios" / "patterns" / "step.yaml"
ARGS = {"runs": 3, "train": 1, "jobs": 1, "opponents": ["hpa"], "duration": 60.0,
        "progress": False}  # fmt: skip


def rows(path: Path, scenario: str) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f) if r["scenario"] == scenario]


def drop_runs(out: Path) -> None:
    """What a clone of the repository has: the tables, no run directories."""
    for d in out.glob("*/eval/*"):
        if d.is_dir():
            shutil.rmtree(d)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """A benchmark of spike and step (oracle on seeds 0-1), its run directories then removed."""
    out = tmp_path_factory.mktemp("stored") / "bm"
    run_benchmark([SPIKE, STEP], out, oracle=True, oracle_runs=2, **ARGS)
    drop_runs(out)
    return out


def test_a_run_of_one_scenario_keeps_the_others_from_seeds_csv(both, tmp_path):
    out = tmp_path / "bm"
    shutil.copytree(both, out)
    before = {f: rows(out / f, "step") for f in ("leaderboard.csv", "seeds.csv", "claims.csv")}
    tuned = json.loads((out / "tuned.json").read_text())["step"]
    res = run_benchmark([SPIKE], out, oracle=True, oracle_runs=2, **ARGS)
    assert [b.scenario for b in res.boards] == ["spike", "step"]
    for f, old in before.items():
        assert rows(out / f, "step") == old, f  # the same numbers, tests and claims
    assert json.loads((out / "tuned.json").read_text())["step"] == tuned
    assert not list((out / "step" / "eval").glob("*/summary.json"))  # nothing of step ran
    md = (out / "leaderboard.md").read_text()
    assert "## step" in md and "kept from seeds.csv (not rerun): `step`" in md
    assert (out / "figures" / "pareto-step.png").is_file()


def test_a_kept_section_must_describe_what_would_run(both, tmp_path):
    out = tmp_path / "bm"
    shutil.copytree(both, out)
    with pytest.raises(KisimError, match=r"scenario step .* uses 0-3; rerun it"):
        run_benchmark([SPIKE], out, oracle=True, oracle_runs=2, **ARGS | {"runs": 4})
    with pytest.raises(KisimError, match=r"oracle:.* was run on seeds 0-1, this run uses none"):
        run_benchmark([SPIKE], out, oracle=False, **ARGS)
    with pytest.raises(KisimError, match=r"step.yaml \(with this run's --duration\) is not the "
                                         "scenario its runs had"):  # fmt: skip
        run_benchmark([SPIKE], out, oracle=True, oracle_runs=2, **ARGS | {"duration": 50.0})
    manifest = out / "step" / "eval" / "eval.json"
    m = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(m | {"meta": {}}))
    with pytest.raises(KisimError, match="does not name its scenario file"):
        run_benchmark([SPIKE], out, oracle=True, oracle_runs=2, **ARGS)
    assert not list((out / "spike" / "eval").glob("*/summary.json"))  # refused before any run


def test_a_malformed_seeds_csv_is_one_line(both, tmp_path):
    out = tmp_path / "bm"
    shutil.copytree(both, out)
    table = out / "seeds.csv"
    lines = table.read_text().splitlines()
    bad = next(i for i, x in enumerate(lines) if x.startswith("step,"))
    lines[bad] = lines[bad].rsplit(",", 1)[0] + ",oops"
    table.write_text("\n".join(lines) + "\n")
    with pytest.raises(KisimError, match=rf"seeds.csv line {bad + 1}: not a seeds.csv row"):
        run_benchmark([SPIKE], out, oracle=True, oracle_runs=2, **ARGS)


def test_extras_of_a_kept_scenario_must_be_in_its_section(both, tmp_path):
    out = tmp_path / "bm"
    shutil.copytree(both, out)
    kept = rows(out / "seeds.csv", "step")[0]["policy"]
    with pytest.raises(KisimError, match=r"scenario step is kept from .*seeds.csv, which does "
                                         "not have this policy"):  # fmt: skip
        run_benchmark([SPIKE], out, oracle=True, oracle_runs=2, extra=["step=hpa:0.33"], **ARGS)
    with pytest.raises(KisimError, match=r"no scenario 'nope' in the benchmark \(spike, step\)"):
        run_benchmark([SPIKE], out, oracle=True, oracle_runs=2, extra=["nope=hpa"], **ARGS)
    res = run_benchmark([SPIKE], out, oracle=True, oracle_runs=2, extra=[f"step={kept}"], **ARGS)
    assert [b.scenario for b in res.boards] == ["spike", "step"]

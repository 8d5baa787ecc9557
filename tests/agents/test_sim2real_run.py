"""`kisim sim2real` without real serving: the twin's side, the report from both sides, resume,
and bad input. The 'real' side here is a STAND-IN (the twin with a 1.5x slower device) so the
report's maths and figures run on two different run tables; tests/bridge/test_sim2real_local.py
runs the real one."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agents.evaluation.harness import evaluate
from agents.evaluation.policy_run import TwinEpisode
from agents.sim2real.experiment import run_sim2real, twin_scenario
from agents.sim2real.report import render
from agents.sim2real.spec import Sim2RealSpec, load_spec
from kisim.core.config import override, resolved_json

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "sim2real" / "local.yaml"
KISIM = str(Path(sys.executable).parent / "kisim")


def small_spec() -> Sim2RealSpec:
    spec = load_spec(CONFIG)
    return spec.model_copy(update={"policies": ["static-cpu:1", "hpa"], "workloads": ["spike"],
                                   "seeds": 3, "duration_s": 60.0})  # fmt: skip


def test_twin_side_then_stand_in_real_side_report(tmp_path: Path) -> None:
    spec, out = small_spec(), tmp_path / "out"
    res = run_sim2real(spec, out, None, progress=False, figures=False, argv=["test"])
    assert res is not None and res.twin is not None and res.twin.ran == 6 and res.real is None
    again = run_sim2real(spec, out, None, progress=False, figures=False, argv=["test"])
    assert again is not None and again.twin is not None
    assert (again.twin.ran, again.twin.skipped) == (0, 6)  # finished runs are never rerun
    doc = json.loads((out / "sim2real.json").read_text())
    assert len(doc["invocations"]) == 2 and doc["seeds"] == [0, 1, 2]
    assert {"command", "commit", "host", "load_average_at_start"} <= set(doc["invocations"][0])

    # STAND-IN for real serving: the same scenario with every service time 1.5x
    sc = twin_scenario(spec)
    dev = sc.calibration.devices["cpu"].service
    slow = override(sc, "stand-in", **{"calibration.devices.cpu.service.base_ms": dev.base_ms * 1.5,
                                       "calibration.devices.cpu.service.per_item_ms":
                                           dev.per_item_ms * 1.5})  # fmt: skip
    evaluate(spec.policies, spec.workloads, [0, 1, 2], out / "real",
             TwinEpisode(json.loads(resolved_json(slow))), reference="hpa", progress=False,
             figures=False)  # fmt: skip
    files = render(out)
    rows = list(csv.DictReader(files["side_by_side"].open()))
    p95 = {r["policy"]: r for r in rows if r["metric"] == "p95_ms"}
    for r in p95.values():
        assert int(r["twin_n"]) == int(r["real_n"]) == 3
    one = p95["static-cpu:1"]  # overloaded: the slower stand-in is slower
    assert float(one["gap_pct"]) < 0 and float(one["real_mean"]) > float(one["twin_mean"])
    tau = list(csv.DictReader(files["kendall"].open()))
    assert {r["metric"] for r in tau} >= {"episode_reward", "slo_attainment"}
    verdicts = list(csv.DictReader(files["verdicts"].open()))
    assert len(verdicts) == 7  # one pair x 7 metrics on one workload
    text = files["report"].read_text()
    assert "Kendall" in text and "What differs" in text and "## Against `hpa`" in text
    figs = sorted(p.name for p in (out / "figures").iterdir())
    assert "twin-vs-real.png" in figs and "twin-vs-real.pdf" in figs
    assert sum(n.startswith("timeseries-spike-") for n in figs) == 4  # 2 policies x png/pdf


def test_no_config_through_the_console_script(tmp_path: Path) -> None:
    r = subprocess.run([KISIM, "sim2real", "--no-real"], capture_output=True, text=True,
                       cwd=tmp_path)  # fmt: skip
    assert r.returncode == 2 and "give --config" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from kisim.cli.app import main

    with pytest.raises(SystemExit) as e:
        main(["sim2real", *args])
    return int(e.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(("args", "needle"), [
    (["--config", "nope.yaml"], "nope.yaml: no such file"),
    (["--config", str(CONFIG), "--workloads", "ramp,nosuch"], "workload 'nosuch'"),
    (["--config", str(CONFIG), "--tune-on", "real"], "--tune-on real"),
    (["--config", str(CONFIG), "--duration", "-5"], "duration_s"),
    (["--config", str(CONFIG), "--policies", "hpa,hpa"], "names repeat"),
])  # fmt: skip
def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      args: list[str], needle: str) -> None:  # fmt: skip
    code, err = _main([*args, "--no-real", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_config_field_errors_name_file_and_field(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text().replace("seeds: 5", "seeds: 0").replace(
        "scenario: local-scenario.yaml", f"scenario: {CONFIG.parent / 'local-scenario.yaml'}"))
    code, err = _main(["--config", str(bad), "--no-real"], capsys)
    assert code == 2 and "bad.yaml" in err and "seeds" in err


def test_total_cost_filled_from_pool_costs_only_where_missing() -> None:
    from agents.sim2real.report import fill_cost

    m = {"cpu_cost": 0.002, "gpu_cost": float("nan"), "cost": float("nan")}
    fill_cost(m)
    assert m["cost"] == pytest.approx(0.002)
    kept = {"cpu_cost": 0.002, "cost": 0.005}
    fill_cost(kept)
    assert kept["cost"] == 0.005


def test_dry_run_prints_the_plan_and_starts_nothing(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from bridge.paths import missing_setup

    if missing_setup() is not None:
        pytest.skip(f"local stack not set up: {missing_setup()}")
    from kisim.cli.app import main

    main(["sim2real", "--config", str(CONFIG), "--dry-run", "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert "dry run: 60 real runs of 60 s on the local backend" in out
    assert "policy hpa: controller external" in out and "HPA v2 algorithm" in out
    assert not (tmp_path / "o").exists()


def test_tuned_spec_replaces_the_opponents_entry() -> None:
    from agents.sim2real.tune import with_tuned

    assert with_tuned(["hpa", "kpa", "x"], "kpa", "kpa:0.2:10") == ["hpa", "kpa:0.2:10", "x"]
    assert with_tuned(["kpa:0.7:30", "hpa"], "kpa", "kpa:0.2:10") == ["kpa:0.2:10", "hpa"]
    assert with_tuned(["hpa"], "kpa", "kpa:0.2:10") == ["hpa", "kpa:0.2:10"]
    assert with_tuned(["kpa-like", "hpa"], "kpa", "kpa:1:60")[0] == "kpa-like"

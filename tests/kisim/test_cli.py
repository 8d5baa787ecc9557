"""The `kisim` CLI as a user meets it: real subprocesses, exit codes, files on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCEN = ROOT / "configs" / "scenarios" / "default.yaml"


def kisim(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from kisim.cli import main; sys.argv[0] = 'kisim'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)  # fmt: skip


def test_simulate_json_and_out_are_deterministic(tmp_path: Path) -> None:
    args = ["simulate", "--scenario", str(SCEN), "--pattern", "spike", "--seed", "3",
            "--duration", "120", "--json"]  # fmt: skip
    a = kisim(*args, "--out", str(tmp_path / "a"))
    b = kisim(*args, "--out", str(tmp_path / "b"))
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    summary = json.loads(a.stdout)
    for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms", "mean_wait_ms", "throughput_rps",
              "success_rate", "slo_violation_rate", "gpu_replica_s", "cpu_replica_s",
              "mean_batch_size"):  # fmt: skip
        assert k in summary
    for f in ("config.json", "timeline.csv", "summary.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    rows = (tmp_path / "a" / "timeline.csv").read_text().splitlines()
    assert len(rows) == 1 + 120 // 15


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--pattern", "no-such-pattern"], "unknown pattern 'no-such-pattern'"),
        (["--policy", "no-such-policy"], "unknown policy 'no-such-policy'"),
        (["--duration", "-5"], "duration_s"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    r = kisim("simulate", "--scenario", str(SCEN), *args, "--json")
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""


def test_missing_scenario_file() -> None:
    r = kisim("simulate", "--scenario", "/no/such/file.yaml")
    assert r.returncode == 2 and "/no/such/file.yaml: no such file" in r.stderr
    assert "Traceback" not in r.stderr


def test_policy_lists_keep_a_constant_of_several_pools_whole() -> None:
    from kisim.cli.options import split_list, split_specs

    assert split_list(" a, ,b ") == ["a", "b"] and split_list(None) == []
    assert split_specs("hpa,fixed:gpu=3,cpu=3@prefer-gpu,kpa:0.7:30") == [
        "hpa", "fixed:gpu=3,cpu=3@prefer-gpu", "kpa:0.7:30"]
    assert split_specs("trace=fixed:gpu=2,cpu=4,flash-crowd=ppo:m.zip") == [
        "trace=fixed:gpu=2,cpu=4", "flash-crowd=ppo:m.zip"]
    assert split_specs("static-cpu:4,gpu=2") == ["static-cpu:4", "gpu=2"]  # not a fixed: spec

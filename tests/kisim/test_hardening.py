"""Issue 12's cases through the *installed* console script, as a new user meets them.

Every usage or input error: exit 2, one line on stderr, no traceback, nothing written.
Also: strict --json, refused runs too large for the machine, Ctrl-C / SIGTERM of
`kisim eval` (exit 130, where the finished runs are, eval.json `interrupted`), and
`--jobs K` workers that die with a `kill -9`-ed parent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCEN = ROOT / "configs" / "scenarios" / "default.yaml"
KISIM = Path(sys.executable).with_name("kisim")


def kisim(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KISIM), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)  # fmt: skip


def assert_one_line(r: subprocess.CompletedProcess[str], needle: str, code: int = 2) -> None:
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert needle in lines[0], lines[0]


def huge(tmp_path: Path, level: str = "1.0e9") -> Path:
    p = tmp_path / "huge.yaml"
    p.write_text(f"apiVersion: kisim/v1\nkind: Scenario\nextends: {SCEN}\n"
                 f"traffic: {{pattern: {{name: constant, params: {{level: {level}}}}}}}\n")  # fmt: skip
    return p


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "missing command"),
        (["simulat"], "No such command 'simulat'"),
        (["simulate", "--scenario", str(SCEN), "--no-such-option"], "No such option: --no-such-option"),
        (["simulate", "--scenario", str(SCEN), "--duration", "abc"], "'--duration'"),
        (["simulate", "--scenario", str(SCEN), "--duration", "inf"], "duration_s: Input should be a finite number"),
        (["simulate", "--scenario", str(SCEN), "--duration", "nan"], "duration_s"),
        (["simulate", "--scenario", str(SCEN), "--duration", "1e9"], "over the budget"),
        (["simulate", "--scenario", "/bin/ls"], "/bin/ls: not a text (UTF-8) YAML file"),
        (["simulate", "--scenario", "configs"], "configs: is a directory"),
        (["simulate", "--scenario", str(SCEN), "--out", "README.md"], "--out README.md: exists and is not a directory"),
        (["train", "--timesteps", "0"], "'--timesteps'"),
        (["train", "--patterns", "tsunami"], "--patterns: unknown pattern 'tsunami'"),
        (["calibrate", "--out", "x.yaml"], "Missing argument 'bundles'"),
        (["validate", "--config", "x.yaml"], "Missing argument 'bundles'"),
        (["calibrate", "traces/cpu-b16-step", "--out", "/proc/x.yaml"], "--out /proc/x.yaml"),
        (["eval", "--policies", ",", "--runs", "1"], "--policies: empty list"),
        (["eval", "--patterns", ",", "--runs", "1"], "--patterns: empty list"),
        (["eval", "--jobs", "-1"], "'--jobs'"),
        (["eval", "--first-seed", "-1", "--runs", "1"], "--first-seed -1: must be >= 0"),
        (["eval", "--runs", "1", "--out", "README.md"], "exists and is not a directory"),
        (["eval", "--scenario", "configs"], "is a directory"),
        (["bench"], "missing command"),
    ],
)
def test_usage_and_input_errors_are_one_line_exit_2(args: list[str], needle: str) -> None:
    assert_one_line(kisim(*args), needle)


def test_missing_bundle_argument_names_it() -> None:
    r = kisim("calibrate", "--out", "x.yaml")
    assert_one_line(r, "kisim calibrate: Missing argument")


def test_a_billion_users_is_refused_before_it_starts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = kisim("simulate", "--scenario", str(huge(tmp_path)), "--duration", "60", "--out", str(out))
    assert_one_line(r, "huge.yaml (--duration): a run would need")
    assert "--allow-large" in r.stderr and not out.exists()
    r = kisim("eval", "--scenario", str(huge(tmp_path)), "--runs", "1", "--out", str(out))
    assert_one_line(r, "over the budget")
    assert not out.exists()


def test_max_requests_refuses_and_allow_large_lifts_it() -> None:
    args = ["simulate", "--scenario", str(SCEN), "--duration", "60", "--max-requests", "10"]
    assert_one_line(kisim(*args), "over the budget of 10")
    r = kisim(*args, "--allow-large", "--json")
    assert r.returncode == 0, r.stderr


def test_json_is_strict_null_not_nan(tmp_path: Path) -> None:
    r = kisim("simulate", "--scenario", str(huge(tmp_path, "0")), "--duration", "30", "--json")
    assert r.returncode == 0, r.stderr

    def bad(c: str) -> None:
        raise ValueError(c)

    summary = json.loads(r.stdout, parse_constant=bad)
    assert summary["p95_ms"] is None  # no requests: no latency, and JSON says so


def test_results_follow_the_umask(tmp_path: Path) -> None:
    from kisim.core.rundir import write_json

    old = os.umask(0o027)
    try:
        write_json(tmp_path / "a.json", {"x": float("nan")})
    finally:
        os.umask(old)
    write_json(tmp_path / "b.json", {"x": 1})
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o666 & ~old
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None}


# --------------------------------------------------------------------------- interruption


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out |= {int(x) for x in (task / "children").read_text().split()}
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    st = Path(f"/proc/{pid}/stat")
    return not (st.exists() and st.read_text().split(") ")[-1].startswith("Z"))


def _start_eval(out: Path, jobs: int = 1) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(KISIM), "eval", "--policies", "static,hpa", "--patterns", "ramp,spike",
         "--runs", "20", "--duration", "300", "--jobs", str(jobs), "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a shell that starts the tests in the background leaves SIGINT ignored, and an
        # ignored signal stays ignored across exec: Python would never see the Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def _wait_for_a_run(out: Path, proc: subprocess.Popen[str]) -> None:
    while not list(out.glob("runs/*/*/seed-*/summary.json")):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_eval_says_where_finished_runs_are(tmp_path: Path, sig: int) -> None:
    out = tmp_path / "ev"
    proc = _start_eval(out)
    _wait_for_a_run(out, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: finished runs are on disk in" in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted:")
    manifest = json.loads((out / "eval.json").read_text())
    assert manifest["status"] == "interrupted"


@pytest.mark.slow
def test_eval_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    proc = _start_eval(out, jobs=2)
    _wait_for_a_run(out, proc)
    workers = _children(proc.pid)
    assert len(workers) >= 2
    proc.kill()
    proc.communicate(timeout=60)
    while any(_alive(w) for w in workers):  # the parent-death signal ends them at once
        time.sleep(0.1)

"""`--inject` from the command line, without starting anything: a bad schedule, faults
without --real or on Kubernetes, and a disk-full on a large disk end in one line and exit 2
before any server starts (and `kisim record --inject` checks the same way)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_eval_real_cli import ROOT, SCEN, kisim


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--inject", "kill:cpu-0@3s"], "--inject need --real"),
        (["--real", "--inject", "kill@3s"], "--inject 'kill@3s': kill needs a target"),
        (["--real", "--inject", "kill:cpu-0@3s,boom@1s"], "unknown fault 'boom'"),
        (["--real", "--backend", "kubernetes", "--prometheus-url", "http://127.0.0.1:1",
          "--inject", "kill:cpu-0@3s"], "--backend local only"),  # fmt: skip
    ],
)
def test_bad_inject_ends_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    r = kisim("eval", "--scenario", SCEN, "--patterns", "constant", "--runs", "1",
              "--policies", "static", "--out", str(tmp_path / "out"), *args)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()


def test_record_checks_inject_before_starting(tmp_path: Path) -> None:
    sched = next((ROOT / "configs" / "schedules").glob("*.yaml"))
    r = kisim("record", "--schedule", str(sched), "--out", str(tmp_path / "b"),
              "--inject", "sigstop@3s+2s")  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "sigstop needs a target" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_twin_fault_schedule_is_refused_on_real_serving(tmp_path: Path) -> None:
    """A scenario's `faults:` section is the twin's; a real run would silently ignore it."""
    sc = ROOT / "configs" / "scenarios" / "faults" / "crash-loop-fault.yaml"
    r = kisim("eval", "--scenario", str(sc), "--patterns", "constant", "--runs", "1",
              "--policies", "static", "--real", "--out", str(tmp_path / "out"))  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "faults:" in r.stderr and "--inject" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()

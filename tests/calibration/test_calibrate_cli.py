"""`kisim calibrate` and `kisim validate` as a user meets them: subprocesses, files, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from synthetic_truth import ROOT

from calibration.bundle import load_bundle
from kisim.core.config import load_calibration

# Registers the two commands itself until `kisim.cli.app` does (then it is a no-op).
CODE = """
import importlib, sys
A = importlib.import_module("kisim.cli.app")
from kisim.cli import calibrate as C
orig = A._register
def reg():
    orig()
    if not any(c.name == "calibrate" for c in A.app.registered_commands):
        C.register(A.app)
A._register = reg
sys.argv[0] = "kisim"
A.main()
"""


def kisim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CODE, *args], capture_output=True, text=True, cwd=ROOT, timeout=600
    )


def test_calibrate_then_validate_held_out(bundles: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "calibrated" / "syn.yaml"
    r = kisim(
        "calibrate",
        str(bundles["step"]),
        "--out",
        str(out),
        "--device",
        "cpu=desktop-cpu",
        "--bootstrap",
        "60",
    )
    assert r.returncode == 0, r.stderr
    assert "overhead_ms" in r.stdout and "wrote" in r.stdout
    cal = load_calibration(out)  # the twin loads it directly
    assert set(cal.devices) == {"desktop-cpu"}
    assert "fitted-on: syn-step" in cal.provenance
    experiment = load_bundle(bundles["step"]).experiment_id
    assert f"fitted-experiments: {experiment}" in cal.provenance
    report = (out.parent / "syn.report.md").read_text()
    assert "## Estimates (95% bootstrap intervals)" in report
    figs = sorted(p.name for p in (out.parent / "syn.figures").iterdir())
    pngs = ["curve-desktop-cpu.png", "overhead-startup-desktop-cpu.png"]
    assert figs == sorted(pngs + [f.replace(".png", ".pdf") for f in pngs])  # PDF for papers
    assert all(f"syn.figures/{f}" in report for f in pngs)

    r = kisim(
        "validate",
        "--config",
        str(out),
        str(bundles["held-out"]),
        str(bundles["step"]),
        "--seeds",
        "3",
        "--json",
        "--out",
        str(tmp_path / "val"),
    )
    assert r.returncode == 0, r.stderr
    assert "syn-step: the calibration was fitted on it (not held out)" in r.stderr
    s = json.loads(r.stdout)
    assert s["held_in"] == ["syn-step"] and set(s["per_bundle"]) == {"syn-held-out", "syn-step"}
    for k in ("throughput_mape", "p50_mape", "p95_mape", "p99_mape", "batch_size_mape"):
        assert 0 <= s[k] < 0.15, (k, s[k])
    assert set(s["bands"]) == {"<50%", "50-80%", ">80%"}
    for f in ("validation.json", "validation.md", "windows-syn-held-out.csv", "syn-held-out.png",
              "syn-held-out.pdf"):  # fmt: skip
        assert (tmp_path / "val" / f).is_file(), f
    assert "| all windows |" in (tmp_path / "val" / "validation.md").read_text()


def test_bad_input_is_one_line_and_exit_code_2(copy_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle("step")
    f = b / "requests.csv"
    rows = f.read_text().splitlines()
    rows[2] = "1795000001.5,,1,cpu,"
    f.write_text("\n".join(rows) + "\n")
    r = kisim("calibrate", str(b), "--out", str(tmp_path / "x.yaml"))
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert "requests.csv: line 3, column 2 (latency_ms): not a number: ''" in r.stderr
    assert not (tmp_path / "x.yaml").exists()
    r = kisim("validate", "--config", str(tmp_path / "missing.yaml"), str(b))
    assert r.returncode == 2 and "missing.yaml: no such file" in r.stderr
